//! The requests of a well-run cluster: kubelets, controllers, EKS
//! components, application service accounts, a few people and the
//! occasional anonymous scanner.

use serde_json::json;

use super::{ACCOUNT, CONTROLLERS, Gen, HUMANS, NAMESPACES, Request, deployment};

impl Gen {
    pub(super) fn kubelet(&mut self) -> Request {
        let ip = self.node_ip();
        let node = format!("ip-{}.ec2.internal", ip.replace('.', "-"));
        let user = json!({
            "username": format!("system:node:{node}"),
            "uid": format!("aws-iam-authenticator:{ACCOUNT}:AROAEXAMPLENODE"),
            "groups": ["system:bootstrappers", "system:nodes", "system:authenticated"],
            "extra": {
                "accessKeyId": ["ASIAEXAMPLE"],
                "arn": [format!("arn:aws:sts::{ACCOUNT}:assumed-role/NodeInstanceRole/i-0{:x}", self.rng.u32(..))],
                "canonicalArn": [format!("arn:aws:iam::{ACCOUNT}:role/NodeInstanceRole")],
                "principalId": ["AROAEXAMPLENODE"],
                "sessionName": ["i-0abc"]
            }
        });
        let (verb, object) = if self.rng.bool() {
            (
                "update",
                json!({"resource":"leases","namespace":"kube-node-lease","name":node,"apiGroup":"coordination.k8s.io","apiVersion":"v1"}),
            )
        } else {
            let ns = *self.pick(&NAMESPACES);
            (
                "patch",
                json!({"resource":"pods","namespace":ns,"name":format!("app-{:x}", self.rng.u16(..)),"apiVersion":"v1","subresource":"status"}),
            )
        };
        Request {
            user,
            ip,
            agent: "kubelet/v1.31.2 (linux/amd64) kubernetes/5864a46".into(),
            verb: verb.into(),
            object: Some(object),
            code: 200,
            body: None,
        }
    }

    pub(super) fn controller(&mut self) -> Request {
        let c = *self.pick(&CONTROLLERS);
        let user = json!({"username": format!("system:serviceaccount:kube-system:{c}"), "uid": self.uuid(), "groups": ["system:serviceaccounts","system:serviceaccounts:kube-system","system:authenticated"]});
        let verb = *self.pick(&["list", "watch", "get", "update"]);
        let resource = *self.pick(&[
            "pods",
            "replicasets",
            "deployments",
            "endpointslices",
            "jobs",
        ]);
        let ns = *self.pick(&NAMESPACES);
        let object =
            json!({"resource":resource,"namespace":ns,"apiGroup":"apps","apiVersion":"v1"});
        Request {
            user,
            ip: "172.16.0.10".into(),
            agent: format!("kube-controller-manager/v1.31.2 (linux/amd64) kubernetes/5864a46/{c}"),
            verb: verb.into(),
            object: Some(object),
            code: 200,
            body: None,
        }
    }

    pub(super) fn eks_component(&mut self) -> Request {
        let who = *self.pick(&[
            "eks:k8s-metrics",
            "eks:certificate-controller",
            "eks:addon-manager",
            "eks:node-manager",
        ]);
        let user = json!({"username": who, "groups": ["system:authenticated"]});
        let object = json!({"resource":"deployments","namespace":"kube-system","name":"vpc-resource-controller","apiGroup":"apps","apiVersion":"v1"});
        Request {
            user,
            ip: "172.16.33.233".into(),
            agent: "eks-k8s-metrics/v0.0.0 (linux/amd64) kubernetes/$Format".into(),
            verb: "list".into(),
            object: Some(object),
            code: 200,
            body: None,
        }
    }

    pub(super) fn app_service_account(&mut self) -> Request {
        let ns = *self.pick(&NAMESPACES[..4]);
        let sa = *self.pick(&["default", "app", "prometheus", "fluent-bit"]);
        let user = json!({
            "username": format!("system:serviceaccount:{ns}:{sa}"),
            "uid": self.uuid(),
            "groups": ["system:serviceaccounts", format!("system:serviceaccounts:{ns}"), "system:authenticated"],
            "extra": {"authentication.kubernetes.io/pod-name": [format!("{sa}-7d9f8-x2x9k")], "authentication.kubernetes.io/pod-uid": [self.uuid()]}
        });
        let resource = *self.pick(&["configmaps", "secrets", "pods", "services"]);
        let code = if resource == "secrets" && self.rng.u8(0..10) == 0 {
            403
        } else {
            200
        };
        let object = json!({"resource":resource,"namespace":ns,"name":format!("{sa}-config"),"apiVersion":"v1"});
        let ip = self.node_ip();
        Request {
            user,
            ip,
            agent: "Go-http-client/2.0".into(),
            verb: "get".into(),
            object: Some(object),
            code,
            body: None,
        }
    }

    pub(super) fn human(&mut self) -> Request {
        let admin = self.rng.u8(0..8) == 0;
        let (email, role) = *self.pick(&HUMANS);
        let username = if admin {
            "kubernetes-admin".to_string()
        } else {
            format!(
                "arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{}",
                email.replace('@', "-")
            )
        };
        let groups = if admin {
            json!(["system:masters", "system:authenticated"])
        } else {
            json!([
                format!("eks-{}", role.to_lowercase()),
                "system:authenticated"
            ])
        };
        let user = json!({
            "username": username,
            "uid": format!("aws-iam-authenticator:{ACCOUNT}:AROAEXAMPLE{}", role.to_uppercase()),
            "groups": groups,
            "extra": {
                "accessKeyId": ["ASIAEXAMPLEHUMAN"],
                "arn": [format!("arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{email}")],
                "canonicalArn": [format!("arn:aws:iam::{ACCOUNT}:role/{role}")],
                "principalId": [format!("AROAEXAMPLE{}", role.to_uppercase())],
                "sessionName": [email]
            }
        });
        let ip = format!("203.0.113.{}", self.rng.u8(1..40));
        let ns = *self.pick(&NAMESPACES);
        let (verb, object, code, body) = match self.rng.u8(0..10) {
            0..=1 => {
                let name = format!("web-{}", self.rng.u16(..1000));
                let body = deployment(&name, ns, self.rng.u8(1..6));
                (
                    "create",
                    json!({"resource":"deployments","namespace":ns,"name":name,"apiGroup":"apps","apiVersion":"v1"}),
                    201,
                    Some(body),
                )
            }
            2 => (
                "get",
                json!({"resource":"secrets","namespace":ns,"name":"db-login","apiVersion":"v1"}),
                if role == "Admin" { 200 } else { 403 },
                None,
            ),
            3 => (
                "delete",
                json!({"resource":"pods","namespace":ns,"name":format!("web-{:x}", self.rng.u16(..)),"apiVersion":"v1"}),
                200,
                None,
            ),
            _ => (
                "list",
                json!({"resource":"pods","namespace":ns,"apiVersion":"v1"}),
                if role == "ReadOnly" && ns == "kube-system" {
                    403
                } else {
                    200
                },
                None,
            ),
        };
        Request {
            user,
            ip,
            agent: "kubectl/v1.31.0 (darwin/arm64) kubernetes/9edcffc".into(),
            verb: verb.into(),
            object: Some(object),
            code,
            body,
        }
    }

    pub(super) fn scanner(&mut self) -> Request {
        let user = json!({"username": "system:anonymous", "groups": ["system:unauthenticated"]});
        let ip = format!("198.51.100.{}", self.rng.u8(1..255));
        Request {
            user,
            ip,
            agent: "python-requests/2.31.0".into(),
            verb: "get".into(),
            object: None,
            code: 403,
            body: None,
        }
    }
}
