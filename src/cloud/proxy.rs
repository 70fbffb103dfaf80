//! Which cloud API calls go through a proxy, for both clouds: the `proxy` and `no_proxy`
//! parameters, else the agent's environment (Pacemaker passes none of the admin's shell, so
//! the parameters are the usual way). Instance metadata is always reached directly: it is
//! link-local and a proxy would answer for the proxy's own host, or not at all.

use super::Options;

/// Instance metadata (EC2 and OCI), the EC2 IPv6 metadata address and the container
/// credential endpoint: never through a proxy.
pub const DIRECT: &str = "169.254.169.254,169.254.170.2,fd00:ec2::254";

/// A proxy to use: its URL and the hosts reached without it (always including [`DIRECT`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy {
    pub url: String,
    pub no_proxy: String,
}

fn env(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|v| !v.trim().is_empty()))
}

/// The proxy of these options: the parameter, else HTTPS_PROXY (or ALL_PROXY, then
/// HTTP_PROXY) with NO_PROXY from the environment; `None` when there is none.
pub fn of(opts: &Options) -> Option<Proxy> {
    let (url, no) = match &opts.proxy {
        Some(p) => (p.clone(), opts.no_proxy.clone()),
        None => (
            env(&[
                "HTTPS_PROXY",
                "https_proxy",
                "ALL_PROXY",
                "all_proxy",
                "HTTP_PROXY",
                "http_proxy",
            ])?,
            env(&["NO_PROXY", "no_proxy"]),
        ),
    };
    let no_proxy = match no {
        Some(n) if !n.trim().is_empty() => format!("{},{DIRECT}", n.trim().trim_end_matches(',')),
        _ => DIRECT.to_string(),
    };
    Some(Proxy { url, no_proxy })
}

/// The hyper-util matcher of a proxy (the OCI client): `intercept(uri)` says whether and
/// how a request goes through it.
pub fn matcher(p: &Proxy) -> hyper_util::client::proxy::matcher::Matcher {
    hyper_util::client::proxy::matcher::Matcher::builder()
        .all(p.url.clone())
        .no(p.no_proxy.clone())
        .build()
}

/// The URL as logs and messages may show it: a password in it replaced by `***`.
pub fn redacted(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((user, host)) => {
                let user = user.split(':').next().unwrap_or_default();
                crate::error::shown(&format!("{scheme}://{user}:***@{host}"))
            }
            None => crate::error::shown(url),
        },
        None => crate::error::shown(url),
    }
}

/// What is wrong with a `proxy=` value, if anything (checked before any call).
pub fn check_url(url: &str) -> Option<&'static str> {
    let Ok(uri) = url.parse::<http::Uri>() else {
        return Some("is not a URL");
    };
    if uri.scheme_str() != Some("http") {
        return Some(
            "must start with http:// (an HTTP proxy; https endpoints go through it by CONNECT)",
        );
    }
    if uri.host().is_none_or(str::is_empty) {
        return Some("has no host");
    }
    if uri.path() != "/" && !uri.path().is_empty() || uri.query().is_some() {
        return Some("must be http://[user:password@]host:port, without a path");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(proxy: Option<&str>, no: Option<&str>) -> Options {
        Options {
            proxy: proxy.map(str::to_string),
            no_proxy: no.map(str::to_string),
            ..Options::default()
        }
    }

    #[test]
    fn the_parameter_wins_and_metadata_is_always_direct() {
        let p = of(&with(
            Some("http://proxy:3128"),
            Some(".internal, 10.0.0.0/8,"),
        ))
        .unwrap();
        assert_eq!(p.url, "http://proxy:3128");
        assert_eq!(p.no_proxy, format!(".internal, 10.0.0.0/8,{DIRECT}"));
        let m = matcher(&p);
        let via = |u: &str| {
            m.intercept(&u.parse().unwrap())
                .map(|i| i.uri().to_string())
        };
        assert_eq!(
            via("https://ec2.eu-west-1.amazonaws.com/").as_deref(),
            Some("http://proxy:3128/")
        );
        assert_eq!(via("http://169.254.169.254/opc/v2/instance/"), None);
        assert_eq!(via("http://10.1.2.3:8080/"), None);
        assert_eq!(
            via("https://iaas.eu-frankfurt-1.oraclecloud.internal/"),
            None
        );
    }

    #[test]
    fn passwords_are_not_shown() {
        assert!(!redacted("http://admin:s3cret@proxy:3128").contains("s3cret"));
        assert!(redacted("http://admin:s3cret@proxy:3128").contains("admin:***@proxy:3128"));
        assert!(redacted("http://proxy:3128").contains("http://proxy:3128"));
    }

    #[test]
    fn proxy_urls_are_checked() {
        assert_eq!(check_url("http://user:pw@proxy.example.com:3128"), None);
        assert_eq!(check_url("http://10.0.0.5:8080/"), None);
        for bad in [
            "proxy:3128",
            "https://proxy:3128",
            "socks5://p:1080",
            "http://p:1/x",
            "http://",
        ] {
            assert!(check_url(bad).is_some(), "{bad}");
        }
    }
}
