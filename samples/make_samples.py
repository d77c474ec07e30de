#!/usr/bin/env python3
"""Writes eksaudit's sample audit logs: the EKS security workshop story, told
once across every input format eksaudit reads. Run from anywhere; output is
deterministic (fixed times, gzip mtime 0). eksaudit's tests pin the results.

The story, on cluster `eksworkshop` (2026-11-02, UTC):
  - the cluster creator `kubernetes-admin` lists nodes, binds user1 to the
    `admin` ClusterRole in namespace ns-a, and edits the aws-auth ConfigMap;
  - namespace admin `user1` works in ns-a, is refused the Secret `db-login`
    in `default` (get and list), execs into a pod, deletes a NetworkPolicy;
  - an anonymous scanner probes the API from a public address;
  - and the usual controller, kubelet and EKS traffic around it.
"""
import gzip
import io
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
ACCOUNT = "111122223333"
GROUP = "/aws/eks/eksworkshop/cluster"
STREAM = "kube-apiserver-audit-5b3c6f2de0a94e1f8c7d6b5a4e3f2a1b"
BASE_MS = 1793606400000  # 2026-11-02T08:00:00Z


def ts(ms, us=0):
    s, milli = divmod(ms, 1000)
    import datetime
    t = datetime.datetime.fromtimestamp(s, datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + ".%06dZ" % (milli * 1000 + us)


ADMIN = {
    "username": "kubernetes-admin",
    "uid": f"aws-iam-authenticator:{ACCOUNT}:AROAEXAMPLECREATOR",
    "groups": ["system:masters", "system:authenticated"],
    "extra": {
        "accessKeyId": ["ASIAEXAMPLECREATOR"],
        "arn": [f"arn:aws:sts::{ACCOUNT}:assumed-role/EKSClusterCreator/jane@example.com"],
        "canonicalArn": [f"arn:aws:iam::{ACCOUNT}:role/EKSClusterCreator"],
        "principalId": ["AROAEXAMPLECREATOR"],
        "sessionName": ["jane@example.com"],
    },
}
USER1 = {
    "username": "user1",
    "uid": f"aws-iam-authenticator:{ACCOUNT}:AIDAEXAMPLEUSER1",
    "groups": ["system:authenticated"],
    "extra": {
        "accessKeyId": ["AKIAEXAMPLEUSER1"],
        "arn": [f"arn:aws:iam::{ACCOUNT}:user/user1"],
        "canonicalArn": [f"arn:aws:iam::{ACCOUNT}:user/user1"],
        "principalId": ["AIDAEXAMPLEUSER1"],
        "sessionName": [""],
    },
}
ANON = {"username": "system:anonymous", "groups": ["system:unauthenticated"]}
KUBELET = {
    "username": "system:node:ip-192-168-12-34.us-west-2.compute.internal",
    "uid": f"aws-iam-authenticator:{ACCOUNT}:AROAEXAMPLENODE",
    "groups": ["system:bootstrappers", "system:nodes", "system:authenticated"],
    "extra": {
        "accessKeyId": ["ASIAEXAMPLENODE"],
        "arn": [f"arn:aws:sts::{ACCOUNT}:assumed-role/eksworkshop-NodeInstanceRole/i-0a1b2c3d4e5f60718"],
        "canonicalArn": [f"arn:aws:iam::{ACCOUNT}:role/eksworkshop-NodeInstanceRole"],
        "principalId": ["AROAEXAMPLENODE"],
        "sessionName": ["i-0a1b2c3d4e5f60718"],
    },
}
METRICS = {"username": "eks:k8s-metrics", "groups": ["system:authenticated"]}
RS_CONTROLLER = {
    "username": "system:serviceaccount:kube-system:replicaset-controller",
    "uid": "2c4d3a8e-62f0-4c59-9d1c-3f0e6b7a8c91",
    "groups": ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"],
}
COREDNS = {
    "username": "system:serviceaccount:kube-system:coredns",
    "uid": "7e1f0c2b-5a9d-4f3e-8b6c-1d2e3f4a5b6c",
    "groups": ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"],
    "extra": {
        "authentication.kubernetes.io/pod-name": ["coredns-787cb67946-8xk2p"],
        "authentication.kubernetes.io/pod-uid": ["0f9e8d7c-6b5a-4c3d-2e1f-0a9b8c7d6e5f"],
    },
}

KUBECTL = "kubectl/v1.31.0 (darwin/arm64) kubernetes/9edcffc"
ADMIN_IP = "203.0.113.10"
USER1_IP = "203.0.113.25"
SCANNER_IP = "198.51.100.23"
NODE_IP = "192.168.12.34"

RBAC_ALLOW = 'RBAC: allowed by ClusterRoleBinding "{b}" of ClusterRole "{r}" to {who}'
# user1 acts through the RoleBinding the admin made for it in ns-a.
USER1_ALLOW = 'RBAC: allowed by RoleBinding "user1-admin/ns-a" of ClusterRole "admin" to User "user1"'


def event(n, ms, user, ip, agent, verb, uri, obj, code, decision="allow", reason="",
          level="Metadata", request=None, stage="ResponseComplete", status_extra=None, impersonated=None):
    ev = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": level,
        "auditID": "00000000-0000-4000-8000-%012d" % n,
        "stage": stage,
        "requestURI": uri,
        "verb": verb,
        "user": user,
    }
    if impersonated is not None:
        ev["impersonatedUser"] = impersonated
    ev |= {
        "sourceIPs": [ip],
        "userAgent": agent,
    }
    if obj is not None:
        ev["objectRef"] = obj
    status = {"metadata": {}, "code": code}
    if status_extra:
        status = {"metadata": {}, **status_extra, "code": code}
    ev["responseStatus"] = status
    if request is not None:
        ev["requestObject"] = request
    ev["requestReceivedTimestamp"] = ts(ms, 123)
    ev["stageTimestamp"] = ts(ms + 7, 456)
    ev["annotations"] = {"authorization.k8s.io/decision": decision, "authorization.k8s.io/reason": reason}
    return ev


def forbidden(message):
    return {"status": "Failure", "message": message, "reason": "Forbidden", "details": {}}


def story():
    """(ms, event) pairs in time order, grouped by the format they ship in."""
    t = BASE_MS
    parts = {}

    # Background traffic: the plain kube-apiserver audit log (NDJSON).
    bg = []
    for i in range(12):
        m = t + i * 15000
        bg.append(event(100 + i * 3, m, KUBELET, NODE_IP, "kubelet/v1.31.2 (linux/amd64) kubernetes/5864a46",
                        "update", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/ip-192-168-12-34.us-west-2.compute.internal?timeout=10s",
                        {"resource": "leases", "namespace": "kube-node-lease", "name": "ip-192-168-12-34.us-west-2.compute.internal", "apiGroup": "coordination.k8s.io", "apiVersion": "v1"},
                        200, reason=""))
        bg.append(event(101 + i * 3, m + 2000, METRICS, "172.16.33.233", "eks-k8s-metrics/v0.0.0 (linux/amd64) kubernetes/$Format",
                        "list", "/apis/apps/v1/namespaces/kube-system/deployments?fieldSelector=metadata.name%3Dvpc-resource-controller",
                        {"resource": "deployments", "namespace": "kube-system", "name": "vpc-resource-controller", "apiGroup": "apps", "apiVersion": "v1"},
                        200, reason=RBAC_ALLOW.format(b="eks:k8s-metrics", r="eks:k8s-metrics", who='User "eks:k8s-metrics"')))
        if i % 2 == 0:
            bg.append(event(102 + i * 3, m + 4000, COREDNS, "192.168.40.7", "coredns/v1.11.3 (linux/amd64) kubernetes/unknown",
                            "watch", "/apis/discovery.k8s.io/v1/endpointslices?allowWatchBookmarks=true&watch=true",
                            {"resource": "endpointslices", "apiGroup": "discovery.k8s.io", "apiVersion": "v1"},
                            200, reason=RBAC_ALLOW.format(b="system:coredns", r="system:coredns", who='ServiceAccount "coredns/kube-system"')))
    bg.append(event(140, t + 61000, RS_CONTROLLER, "172.16.0.10", "kube-controller-manager/v1.31.2 (linux/amd64) kubernetes/5864a46/system:serviceaccount:kube-system:replicaset-controller",
                    "create", "/api/v1/namespaces/ns-a/pods", {"resource": "pods", "namespace": "ns-a", "apiVersion": "v1"},
                    201, reason=RBAC_ALLOW.format(b="system:controller:replicaset-controller", r="system:controller:replicaset-controller", who='ServiceAccount "replicaset-controller/kube-system"')))
    parts["ndjson"] = bg

    # The cluster creator's session: S3 export lines.
    a = t + 30000
    parts["export"] = [
        event(1, a, ADMIN, ADMIN_IP, KUBECTL, "list", "/api/v1/nodes?limit=500", {"resource": "nodes", "apiVersion": "v1"}, 200),
        event(2, a + 5000, ADMIN, ADMIN_IP, KUBECTL, "create", "/api/v1/namespaces", {"resource": "namespaces", "name": "ns-a", "apiVersion": "v1"}, 201,
              level="Request", request={"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "ns-a"}}),
        event(3, a + 9000, ADMIN, ADMIN_IP, KUBECTL, "create", "/apis/rbac.authorization.k8s.io/v1/namespaces/ns-a/rolebindings",
              {"resource": "rolebindings", "namespace": "ns-a", "name": "user1-admin", "apiGroup": "rbac.authorization.k8s.io", "apiVersion": "v1"}, 201,
              level="Request", request={"kind": "RoleBinding", "apiVersion": "rbac.authorization.k8s.io/v1",
                                        "metadata": {"name": "user1-admin", "namespace": "ns-a"},
                                        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
                                        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "user1"}]}),
        event(5, a + 11000, ADMIN, ADMIN_IP, KUBECTL, "create", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
              {"resource": "selfsubjectaccessreviews", "apiGroup": "authorization.k8s.io", "apiVersion": "v1"}, 201,
              impersonated={"username": "user1", "groups": ["system:authenticated"]}),
    ]

    # The aws-auth edit, as found with Logs Insights (get-query-results).
    parts["insights"] = [
        event(4, a + 14000, ADMIN, ADMIN_IP, KUBECTL, "patch", "/api/v1/namespaces/kube-system/configmaps/aws-auth?fieldManager=kubectl-edit",
              {"resource": "configmaps", "namespace": "kube-system", "name": "aws-auth", "apiVersion": "v1"}, 200,
              level="Request", request={"data": {"mapUsers": "- userarn: arn:aws:iam::%s:user/user1\n  username: user1\n  groups: []\n" % ACCOUNT}}),
    ]

    # user1's session: Firehose subscription payloads (gzip, concatenated).
    u = t + 90000
    parts["firehose"] = [
        event(10, u, USER1, USER1_IP, KUBECTL, "list", "/api/v1/namespaces/ns-a/pods?limit=500", {"resource": "pods", "namespace": "ns-a", "apiVersion": "v1"}, 200,
              reason=USER1_ALLOW),
        event(11, u + 4000, USER1, USER1_IP, KUBECTL, "create", "/apis/apps/v1/namespaces/ns-a/deployments?fieldManager=kubectl-create",
              {"resource": "deployments", "namespace": "ns-a", "name": "web", "apiGroup": "apps", "apiVersion": "v1"}, 201, level="Request",
              reason=USER1_ALLOW,
              request={"kind": "Deployment", "apiVersion": "apps/v1", "metadata": {"name": "web", "namespace": "ns-a"},
                       "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                                "template": {"metadata": {"labels": {"app": "web"}},
                                             "spec": {"containers": [{"name": "nginx", "image": "public.ecr.aws/nginx/nginx:1.27"}]}}}}),
        event(12, u + 20000, USER1, USER1_IP, KUBECTL, "get", "/api/v1/namespaces/default/secrets/db-login",
              {"resource": "secrets", "namespace": "default", "name": "db-login", "apiVersion": "v1"}, 403, decision="forbid",
              status_extra=forbidden('secrets "db-login" is forbidden: User "user1" cannot get resource "secrets" in API group "" in the namespace "default"')),
        event(13, u + 23000, USER1, USER1_IP, KUBECTL, "list", "/api/v1/namespaces/default/secrets?limit=500",
              {"resource": "secrets", "namespace": "default", "apiVersion": "v1"}, 403, decision="forbid",
              status_extra=forbidden('secrets is forbidden: User "user1" cannot list resource "secrets" in API group "" in the namespace "default"')),
        event(14, u + 40000, USER1, USER1_IP, KUBECTL, "create", "/api/v1/namespaces/ns-a/pods/web-6d4b7c8f9-q2w3e/exec?command=sh&command=-c&command=cat+%2Fetc%2Fshadow&container=nginx&stdin=true&stdout=true&tty=true",
              {"resource": "pods", "namespace": "ns-a", "name": "web-6d4b7c8f9-q2w3e", "apiVersion": "v1", "subresource": "exec"}, 101,
              reason=USER1_ALLOW),
    ]

    # The NetworkPolicy deletion: pretty-printed JSON array of events.
    parts["pretty"] = [
        event(15, u + 60000, USER1, USER1_IP, KUBECTL, "delete", "/apis/networking.k8s.io/v1/namespaces/ns-a/networkpolicies/deny-all",
              {"resource": "networkpolicies", "namespace": "ns-a", "name": "deny-all", "apiGroup": "networking.k8s.io", "apiVersion": "v1"}, 200,
              level="Request", reason=USER1_ALLOW, request={"kind": "DeleteOptions", "apiVersion": "meta.k8s.io/__internal", "propagationPolicy": "Background"}),
    ]

    # Anonymous scanning: `aws logs filter-log-events` output.
    s = t + 120000
    scan = []
    for i, (verb, uri, code, decision) in enumerate([
        ("get", "/.env", 403, "forbid"),
        ("get", "/api/v1/namespaces/kube-system/secrets", 403, "forbid"),
        ("get", "/version", 200, "allow"),
        ("propfind", "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php", 403, "forbid"),
        ("get", "/apis", 403, "forbid"),
    ]):
        obj = {"resource": "secrets", "namespace": "kube-system", "apiVersion": "v1"} if "secrets" in uri else None
        reason = RBAC_ALLOW.format(b="system:public-info-viewer", r="system:public-info-viewer", who='Group "system:unauthenticated"') if code == 200 else ""
        extra = None if code == 200 else forbidden("forbidden: User \"system:anonymous\" cannot %s path \"%s\"" % (verb, uri))
        scan.append(event(20 + i, s + i * 700, ANON, SCANNER_IP, "python-requests/2.31.0", verb, uri, obj, code,
                          decision=decision, reason=reason, status_extra=extra))
    parts["cli"] = scan

    # More background: get-log-events output (gzip, two members).
    parts["get"] = [
        event(30 + i, t + 150000 + i * 10000, KUBELET, NODE_IP, "kubelet/v1.31.2 (linux/amd64) kubernetes/5864a46", "patch",
              "/api/v1/namespaces/ns-a/pods/web-6d4b7c8f9-q2w3e/status",
              {"resource": "pods", "namespace": "ns-a", "name": "web-6d4b7c8f9-q2w3e", "apiVersion": "v1", "subresource": "status"}, 200)
        for i in range(4)
    ]
    return parts


def compact(ev):
    return json.dumps(ev, separators=(",", ":"), ensure_ascii=False)


def ms_of(ev):
    import datetime
    s = ev["stageTimestamp"]
    d = datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
    return int(d.timestamp() * 1000) + 350  # CloudWatch receives it a little later


def gz(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as f:
        f.write(data)
    return buf.getvalue()


def write(rel, data):
    path = os.path.join(HERE, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def main():
    parts = story()
    # 1. kube-apiserver --audit-log-path: NDJSON.
    write("kube-apiserver/audit.log", "".join(compact(e) + "\n" for e in parts["ndjson"]).encode())

    # 2. CloudWatch S3 export: <task>/<stream>/000000.gz with `<ts> <json>` lines.
    lines = []
    for e in parts["export"]:
        ms = ms_of(e)
        import datetime
        t = datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)
        lines.append(t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ " % (ms % 1000) + compact(e) + "\n")
    write(f"s3-export/7f3e2a10-5c4b-4d8e-9f1a-2b3c4d5e6f70/{STREAM}/000000.gz", gz("".join(lines).encode()))

    # 3. Logs Insights get-query-results.
    rows = []
    for e in parts["insights"]:
        ms = ms_of(e)
        import datetime
        t = datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)
        rows.append([
            {"field": "@timestamp", "value": t.strftime("%Y-%m-%d %H:%M:%S.") + "%03d" % (ms % 1000)},
            {"field": "@message", "value": compact(e)},
            {"field": "@logStream", "value": STREAM},
            {"field": "@log", "value": f"{ACCOUNT}:{GROUP}"},
        ])
    doc = {"results": rows, "statistics": {"recordsMatched": 1.0, "recordsScanned": 60.0, "bytesScanned": 51234.0}, "status": "Complete"}
    write("insights/get-query-results.json", (json.dumps(doc, indent=4) + "\n").encode())

    # 4. Firehose to S3: gzip of concatenated subscription payloads, with a
    #    CONTROL_MESSAGE first and an authenticator stream that is not audit.
    payloads = [json.dumps({"messageType": "CONTROL_MESSAGE", "owner": "CloudwatchLogs", "logGroup": "", "logStream": "",
                            "subscriptionFilters": [], "logEvents": [{"id": "", "timestamp": BASE_MS, "message": "CWL CONTROL MESSAGE: Checking health of destination Firehose."}]},
                           separators=(",", ":"))]
    events = parts["firehose"]
    for chunk in (events[:2], events[2:]):
        payloads.append(json.dumps({
            "messageType": "DATA_MESSAGE", "owner": ACCOUNT, "logGroup": GROUP, "logStream": STREAM,
            "subscriptionFilters": ["eksaudit-to-firehose"],
            "logEvents": [{"id": "3%055d" % (int(e["auditID"][-4:]) * 7), "timestamp": ms_of(e), "message": compact(e)} for e in chunk],
        }, separators=(",", ":")))
    payloads.append(json.dumps({
        "messageType": "DATA_MESSAGE", "owner": ACCOUNT, "logGroup": GROUP, "logStream": "authenticator-5b3c6f2de0a94e1f8c7d6b5a4e3f2a1b",
        "subscriptionFilters": ["eksaudit-to-firehose"],
        "logEvents": [{"id": "3%055d" % 1, "timestamp": BASE_MS + 89000, "message": 'time="2026-11-02T08:01:29Z" level=info msg="access granted" arn="arn:aws:iam::111122223333:user/user1"'}],
    }, separators=(",", ":")))
    write("firehose/2026/11/02/08/eksaudit-stream-1-2026-11-02-08-00-00-abcd.gz", gz("".join(payloads).encode()))

    # 5. Pretty-printed JSON array of events (a hand-exported incident file).
    write("incident/networkpolicy-deleted.json", (json.dumps(parts["pretty"], indent=2) + "\n").encode())

    # 6. aws logs filter-log-events output, across two streams.
    out = {"events": [], "searchedLogStreams": [{"logStreamName": STREAM, "searchedCompletely": True}]}
    for i, e in enumerate(parts["cli"]):
        ms = ms_of(e)
        out["events"].append({"logStreamName": STREAM, "timestamp": ms, "message": compact(e), "ingestionTime": ms + 400,
                              "eventId": "38%054d" % (i + 1)})
    write("cli/filter-log-events.json", (json.dumps(out, indent=4) + "\n").encode())

    # 7. aws logs get-log-events output, gzip in two members.
    evs = [{"timestamp": ms_of(e), "message": compact(e), "ingestionTime": ms_of(e) + 400} for e in parts["get"]]
    docs = [json.dumps({"events": evs[:2], "nextForwardToken": "f/1", "nextBackwardToken": "b/1"}, indent=4) + "\n",
            json.dumps({"events": evs[2:], "nextForwardToken": "f/2", "nextBackwardToken": "b/2"}, indent=4) + "\n"]
    write("cli/get-log-events.json.gz", gz(docs[0].encode()) + gz(docs[1].encode()))


if __name__ == "__main__":
    main()
