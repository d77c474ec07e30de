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
         ev(T + 1000, DEV, "create", "deployments", "shop", "web", group="apps", request=deployment(container(privileged=True)))],
        [ev(T, DEV, "create", "deployments", "shop", "web", group="apps", request=deployment(container(privileged=False))),
         ev(T + 1000, RS, "create", "pods", "shop", request=pod(container(privileged=True)))],
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
}


def main():
    for rule, (fires, quiet) in CASES.items():
        for which, events in (("fires", fires), ("quiet", quiet)):
            with open(os.path.join(HERE, f"{rule}.{which}.ndjson"), "w") as f:
                for e in events:
                    f.write(json.dumps(e, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
