//! The busy mix's requests: the cluster creator used for everyday work,
//! a person deleting in bursts, a developer refused over and over, exec,
//! and access changes (cluster-admin bindings, aws-auth edits).

use serde_json::{Value, json};

use super::{ACCOUNT, Gen, HUMANS, NAMESPACES, Request};

impl Gen {
    /// An IAM role's session, as `aws-iam-authenticator` maps it.
    fn iam_user(&mut self, username: &str, role: &str, session: &str, groups: Value) -> Value {
        json!({
            "username": username,
            "uid": format!("aws-iam-authenticator:{ACCOUNT}:AROAEXAMPLE{}", role.to_uppercase()),
            "groups": groups,
            "extra": {
                "accessKeyId": ["ASIAEXAMPLEHUMAN"],
                "arn": [format!("arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{session}")],
                "canonicalArn": [format!("arn:aws:iam::{ACCOUNT}:role/{role}")],
                "principalId": [format!("AROAEXAMPLE{}", role.to_uppercase())],
                "sessionName": [session]
            }
        })
    }

    fn kubectl(&mut self, user: Value, verb: &str, object: Value, code: i64) -> Request {
        Request {
            user,
            ip: format!("203.0.113.{}", self.rng.u8(1..40)),
            agent: "kubectl/v1.31.0 (darwin/arm64) kubernetes/9edcffc".into(),
            verb: verb.into(),
            object: Some(object),
            code,
            body: None,
        }
    }

    /// `kubernetes-admin` (the cluster creator, in `system:masters`) used
    /// for day-to-day work, by a CI role.
    pub(super) fn cluster_creator(&mut self) -> Request {
        let user = self.iam_user(
            "kubernetes-admin",
            "ClusterCreator",
            "ci-deploy",
            json!(["system:masters", "system:authenticated"]),
        );
        let ns = *self.pick(&NAMESPACES);
        let resource = *self.pick(&["pods", "secrets", "configmaps", "deployments", "nodes"]);
        let verb = *self.pick(&["get", "list", "watch", "patch", "update"]);
        let object = json!({"resource":resource,"namespace":ns,"name":format!("{resource}-{}", self.rng.u8(..20)),"apiVersion":"v1"});
        self.kubectl(user, verb, object, 200)
    }

    /// One person cleaning up: deletions in bursts.
    pub(super) fn deleter(&mut self) -> Request {
        let user = self.iam_user(
            "arn:aws:sts::111122223333:assumed-role/Admin/erin-example.com",
            "Admin",
            "erin@example.com",
            json!(["eks-admin", "system:authenticated"]),
        );
        let ns = *self.pick(&NAMESPACES[..4]);
        let resource = *self.pick(&["pods", "configmaps", "services", "networkpolicies"]);
        let object = json!({"resource":resource,"namespace":ns,"name":format!("old-{:x}", self.rng.u16(..)),"apiVersion":"v1"});
        self.kubectl(user, "delete", object, 200)
    }

    /// A developer trying what the role does not allow, over and over.
    pub(super) fn refused(&mut self) -> Request {
        let user = self.iam_user(
            "arn:aws:sts::111122223333:assumed-role/Developer/frank-example.com",
            "Developer",
            "frank@example.com",
            json!(["eks-developer", "system:authenticated"]),
        );
        let object = json!({"resource":"secrets","namespace":"kube-system","name":"aws-load-balancer-tls","apiVersion":"v1"});
        let mut r = self.kubectl(user, "get", object, 403);
        r.ip = "203.0.113.77".into();
        r
    }

    pub(super) fn exec(&mut self) -> Request {
        let (email, role) = *self.pick(&HUMANS);
        let username = format!(
            "arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{}",
            email.replace('@', "-")
        );
        let groups = json!([
            format!("eks-{}", role.to_lowercase()),
            "system:authenticated"
        ]);
        let user = self.iam_user(&username, role, email, groups);
        let ns = *self.pick(&NAMESPACES[..4]);
        let object = json!({"resource":"pods","namespace":ns,"name":format!("web-{:x}", self.rng.u16(..)),"apiVersion":"v1","subresource":"exec"});
        self.kubectl(user, "create", object, 101)
    }

    /// RBAC bindings to cluster-admin, and edits of aws-auth.
    pub(super) fn access_change(&mut self) -> Request {
        let user = self.iam_user(
            "arn:aws:sts::111122223333:assumed-role/Admin/alice-example.com",
            "Admin",
            "alice@example.com",
            json!(["eks-admin", "system:authenticated"]),
        );
        if self.rng.bool() {
            let name = format!("tmp-admin-{}", self.rng.u16(..));
            let object = json!({"resource":"clusterrolebindings","name":name,"apiGroup":"rbac.authorization.k8s.io","apiVersion":"v1"});
            let mut r = self.kubectl(user, "create", object, 201);
            r.body = Some(json!({
                "kind": "ClusterRoleBinding",
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "metadata": {"name": name},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
                "subjects": [{"kind": "User", "name": "mallory", "apiGroup": "rbac.authorization.k8s.io"}]
            }));
            r
        } else {
            let object = json!({"resource":"configmaps","namespace":"kube-system","name":"aws-auth","apiVersion":"v1"});
            self.kubectl(user, "patch", object, 200)
        }
    }
}
