//! Functions a security engineer needs over audit events: CIDR membership,
//! private/public IP tests, system identities, URL decoding, the command
//! of an exec request and the images of a pod spec. Small closures registered with `create_udf`; the IP
//! maths is `ipnet`'s and std's.

use std::net::IpAddr;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{AggregateUDF, ColumnarValue, ScalarUDF, Volatility, create_udf};
use datafusion::prelude::SessionContext;
use ipnet::IpNet;

use super::pod;

/// Registers every eksaudit function on the session.
pub fn register(ctx: &SessionContext) {
    let bool_fn = |name: &str, args: usize, f: fn(&[&str]) -> Result<bool>| {
        create_udf(
            name,
            vec![DataType::Utf8; args],
            DataType::Boolean,
            Volatility::Immutable,
            Arc::new(move |cols: &[ColumnarValue]| {
                map_strings::<bool, BooleanArray>(cols, |a| f(a).map(Some))
            }),
        )
    };
    let text_fn = |name: &str, args: usize, f: fn(&[&str]) -> Option<String>| {
        create_udf(
            name,
            vec![DataType::Utf8; args],
            DataType::Utf8,
            Volatility::Immutable,
            Arc::new(move |cols: &[ColumnarValue]| {
                map_strings::<String, StringArray>(cols, |a| Ok(f(a)))
            }),
        )
    };
    ctx.register_udf(text_fn("url_decode", 1, |a| Some(percent_decode(a[0]))));
    ctx.register_udf(text_fn("exec_command", 1, |a| exec_command(a[0])));
    ctx.register_udf(text_fn("pod_images", 1, |a| {
        let images = pod::pod_images(a[0]);
        (!images.is_empty()).then(|| images.join(","))
    }));
    ctx.register_udf(text_fn("images_outside", 2, |a| {
        pod::images_outside(a[0], a[1])
    }));
    ctx.register_udf(bool_fn("cidr_match", 2, |a| cidr_match(a[0], a[1])));
    ctx.register_udf(bool_fn("cidr_match_any", 2, |a| cidr_match_any(a[0], a[1])));
    ctx.register_udf(bool_fn("is_private_ip", 1, |a| {
        Ok(parse_ip(a[0]).is_some_and(is_private))
    }));
    ctx.register_udf(bool_fn("is_public_ip", 1, |a| {
        Ok(parse_ip(a[0]).is_some_and(is_public))
    }));
    ctx.register_udf(bool_fn("is_system_user", 1, |a| Ok(is_system_user(a[0]))));
    ctx.register_udf(bool_fn("is_valid_ip", 1, |a| Ok(parse_ip(a[0]).is_some())));
    ctx.register_udaf(AggregateUDF::from(super::distinct_agg::ArrayAgg::new()));
    ctx.register_udf(ScalarUDF::from(super::first_present::FirstPresent::new()));
    ctx.register_udf(ScalarUDF::from(super::regex_replace::RegexpReplace::new()));
}

/// Applies `f` row by row to string arguments; any null argument gives null.
fn map_strings<T, A>(
    cols: &[ColumnarValue],
    f: impl Fn(&[&str]) -> Result<Option<T>>,
) -> Result<ColumnarValue>
where
    A: Array + FromIterator<Option<T>> + 'static,
{
    let all_scalar = cols.iter().all(|c| matches!(c, ColumnarValue::Scalar(_)));
    // A constant argument (a CIDR list, registry prefixes) stays one
    // string, not an array of the same string once a row.
    let args: Vec<Arg> = cols.iter().map(Arg::new).collect::<Result<_>>()?;
    let rows = cols
        .iter()
        .find_map(|c| match c {
            ColumnarValue::Array(a) => Some(a.len()),
            ColumnarValue::Scalar(_) => None,
        })
        .unwrap_or(1);
    let mut values: Vec<&str> = Vec::with_capacity(args.len());
    // Collected from an iterator of known length (not of `Result`s, whose
    // length is unknown), so the array is allocated once.
    let mut failed = None;
    let out: A = (0..rows)
        .map(|i| {
            values.clear();
            for a in &args {
                values.push(a.get(i)?);
            }
            f(&values).unwrap_or_else(|e| {
                failed.get_or_insert(e);
                None
            })
        })
        .collect();
    if let Some(e) = failed {
        return Err(e);
    }
    let out: ArrayRef = Arc::new(out);
    if all_scalar {
        Ok(ColumnarValue::Scalar(
            datafusion::scalar::ScalarValue::try_from_array(&out, 0)?,
        ))
    } else {
        Ok(ColumnarValue::Array(out))
    }
}

/// A string argument of a function: one value, or one a row.
enum Arg {
    Scalar(Option<String>),
    Array(StringArray),
}

impl Arg {
    fn new(c: &ColumnarValue) -> Result<Self> {
        Ok(match c {
            ColumnarValue::Scalar(s) => match s.try_as_str() {
                Some(v) => Arg::Scalar(v.map(str::to_string)),
                None => Arg::Scalar(match s.cast_to(&DataType::Utf8)? {
                    datafusion::scalar::ScalarValue::Utf8(v) => v,
                    _ => None,
                }),
            },
            ColumnarValue::Array(a) => Arg::Array(
                cast(a, &DataType::Utf8)?
                    .as_string_opt::<i32>()
                    .ok_or_else(|| {
                        DataFusionError::Internal("cast to Utf8 gave no strings".into())
                    })?
                    .clone(),
            ),
        })
    }

    /// Row `i`'s value; `None` for null.
    fn get(&self, i: usize) -> Option<&str> {
        match self {
            Arg::Scalar(v) => v.as_deref(),
            Arg::Array(a) => a.is_valid(i).then(|| a.value(i)),
        }
    }
}

fn parse_ip(s: &str) -> Option<IpAddr> {
    s.trim().parse().ok()
}

/// `cidr_match(ip, cidr)`: whether `ip` is in `cidr` (a bare address means
/// /32 or /128). An unparsable IP is simply not in the range; an unparsable
/// CIDR is an error, since it is a mistake in the query.
pub fn cidr_match(ip: &str, cidr: &str) -> Result<bool> {
    let cidr = cidr.trim();
    let net: IpNet = cidr
        .parse()
        .or_else(|_| cidr.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| {
            DataFusionError::Execution(format!(
                "cidr_match: {cidr:?} is not a CIDR range such as 10.0.0.0/8"
            ))
        })?;
    Ok(parse_ip(ip).is_some_and(|ip| net.contains(&ip)))
}

/// `cidr_match_any(ip, 'cidr,cidr,...')`: whether `ip` is in any of the
/// comma-separated ranges (none: false). Rule parameters render lists so.
pub fn cidr_match_any(ip: &str, cidrs: &str) -> Result<bool> {
    for cidr in cidrs.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        if cidr_match(ip, cidr)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Non-routable addresses: RFC 1918, carrier-grade NAT, loopback,
/// link-local, IPv6 unique-local (VPC addresses are these).
pub fn is_private(ip: IpAddr) -> bool {
    const CGNAT: &str = "100.64.0.0/10";
    match ip {
        IpAddr::V4(v4) => {
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || CGNAT
                    .parse::<ipnet::Ipv4Net>()
                    .is_ok_and(|n| n.contains(&v4))
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_private(IpAddr::V4(v4)),
            None => v6.is_loopback() || v6.is_unique_local() || v6.is_unicast_link_local(),
        },
    }
}

/// Routable unicast: not private, unspecified, multicast or broadcast.
/// Documentation ranges (TEST-NET, 2001:db8::/32) count as public: they
/// never reach a real cluster, and examples use them for public addresses.
pub fn is_public(ip: IpAddr) -> bool {
    let broadcast = matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
    !(is_private(ip) || ip.is_unspecified() || ip.is_multicast() || broadcast)
}

/// Identities of the control plane itself: `eks:*` components, nodes,
/// `system:kube-*` components, kube-system service accounts and other
/// `system:` users. Not `system:anonymous`, and not service accounts of
/// other namespaces (those are workloads).
pub fn is_system_user(username: &str) -> bool {
    if username.starts_with("eks:") {
        return true;
    }
    let Some(rest) = username.strip_prefix("system:") else {
        return false;
    };
    match rest.strip_prefix("serviceaccount:") {
        Some(sa) => sa.starts_with("kube-system:"),
        None => rest != "anonymous",
    }
}

/// The command of an exec request: the `command=` words of its URI
/// (`command=ls&command=-la`), decoded and joined with spaces.
pub fn exec_command(uri: &str) -> Option<String> {
    let query = uri.split_once('?')?.1;
    let words: Vec<String> = query
        .split('&')
        .filter_map(|kv| kv.strip_prefix("command="))
        .map(percent_decode)
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

/// `%XX` escapes and `+` (a space) decoded; anything else, broken escapes
/// included, kept as it is.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_commands_are_decoded() {
        assert_eq!(
            exec_command("/api/v1/namespaces/a/pods/p/exec?command=sh&command=-c&command=cat%20%2Fetc%2Fpasswd&container=c&stdin=true").as_deref(),
            Some("sh -c cat /etc/passwd")
        );
        assert_eq!(
            exec_command("/api/v1/namespaces/a/pods/p/exec?stdin=true"),
            None
        );
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }

    #[test]
    fn cidr() {
        assert_eq!(cidr_match("10.1.2.3", "10.0.0.0/8").ok(), Some(true));
        assert_eq!(cidr_match("11.1.2.3", "10.0.0.0/8").ok(), Some(false));
        assert_eq!(cidr_match("10.1.2.3", "10.1.2.3").ok(), Some(true));
        assert_eq!(cidr_match("2001:db8::1", "2001:db8::/32").ok(), Some(true));
        assert_eq!(cidr_match("not-an-ip", "10.0.0.0/8").ok(), Some(false));
        assert!(cidr_match("10.0.0.1", "10.0.0/8").is_err());
        assert_eq!(
            cidr_match_any("10.1.2.3", "192.168.0.0/16, 10.0.0.0/8").ok(),
            Some(true)
        );
        assert_eq!(cidr_match_any("10.1.2.3", "").ok(), Some(false));
    }

    #[test]
    fn private_and_public() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        for p in [
            "10.0.0.1",
            "172.16.33.233",
            "192.168.1.1",
            "100.64.1.1",
            "::1",
            "fd00::1",
            "127.0.0.1",
        ] {
            assert!(is_private(ip(p)), "{p}");
            assert!(!is_public(ip(p)), "{p}");
        }
        for p in ["8.8.8.8", "52.94.1.1", "2600:1f18::1"] {
            assert!(is_public(ip(p)), "{p}");
        }
        assert!(!is_public(ip("0.0.0.0")));
    }

    #[test]
    fn system_users() {
        for u in [
            "eks:k8s-metrics",
            "system:node:ip-10-0-0-1.ec2.internal",
            "system:kube-scheduler",
            "system:serviceaccount:kube-system:replicaset-controller",
        ] {
            assert!(is_system_user(u), "{u}");
        }
        for u in [
            "system:anonymous",
            "kubernetes-admin",
            "system:serviceaccount:default:app",
            "arn:aws:sts::1:assumed-role/r/s",
        ] {
            assert!(!is_system_user(u), "{u}");
        }
    }
}
