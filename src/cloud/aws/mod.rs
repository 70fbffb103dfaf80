//! Amazon EC2: a secondary private IPv4 address (and optionally an Elastic IP) moved between
//! ENIs with aws-sdk-ec2. The ENI is the one whose MAC is `nic`'s, found through IMDSv2, never
//! blindly the primary. Every call is bounded by the action's deadline; the SDK's own retries
//! (standard mode, throttling back-off) run inside that bound.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_runtime::env_config::file::{
    EnvConfigFileKind as ProfileFileKind, EnvConfigFiles as ProfileFiles,
};
use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::Filter;
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

use super::{Bounded, Cloud, CloudKind, Options, Owner, mac_string, parse_cidr4};
use crate::cloud::proxy;
use crate::error::{Error, Kind, Result};
use crate::host::Link;

mod errors;
pub mod imds;
mod power;
mod role;
mod routes;
mod vip;

use errors::sdk_error;
use imds::Imds;
use vip::Eni;

/// Where this process's EC2 calls go, for the message of a call that cannot get there (one
/// client per process).
static API: std::sync::OnceLock<String> = std::sync::OnceLock::new();
/// The assumed-role credentials file this process uses, if any (forgotten when refused).
static ROLE_CACHE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

pub struct Aws {
    rt: Bounded,
    imds: Option<Imds>,
    opts: Options,
    run_dir: PathBuf,
    client: RefCell<Option<aws_sdk_ec2::Client>>,
    region: RefCell<Option<(String, &'static str)>>,
    enis: RefCell<HashMap<String, Eni>>,
}

impl Aws {
    pub fn new(opts: &Options, run_dir: &Path, deadline: Instant) -> Result<Self> {
        let rt = Bounded::new(deadline)?;
        let imds = Imds::endpoint_from_env().map(|e| Imds::new(&e, run_dir, deadline));
        Ok(Aws {
            rt,
            imds,
            opts: opts.clone(),
            run_dir: run_dir.to_path_buf(),
            client: RefCell::new(None),
            region: RefCell::new(None),
            enis: RefCell::new(HashMap::new()),
        })
    }

    fn imds(&self) -> Result<&Imds> {
        self.imds.as_ref().ok_or_else(|| {
            Error::not_installed(
                "instance metadata is disabled (AWS_EC2_METADATA_DISABLED or \
                 CLOUDHA_METADATA_DISABLED is true) but cloud=aws \
                 needs it to find the ENI of nic",
            )
        })
    }

    fn region(&self) -> Result<(String, &'static str)> {
        if let Some(r) = self.region.borrow().clone() {
            return Ok(r);
        }
        let found = if let Some(r) = &self.opts.region {
            (r.clone(), "parameter region")
        } else if let Some(r) = ["AWS_REGION", "AWS_DEFAULT_REGION"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|r| !r.is_empty()))
        {
            (r, "environment")
        } else {
            let r = self
                .rt
                .run("reading the region from instance metadata", async {
                    self.imds()?.get("meta-data/placement/region").await
                })?;
            (r.trim().to_string(), "instance metadata")
        };
        *self.region.borrow_mut() = Some(found.clone());
        Ok(found)
    }

    /// The EC2 client, built on first use so that monitors which need no API call pay nothing.
    fn ec2(&self) -> Result<aws_sdk_ec2::Client> {
        if let Some(c) = self.client.borrow().clone() {
            return Ok(c);
        }
        let (region, _) = self.region()?;
        let url = self.opts.endpoint_url.clone();
        let url = url.unwrap_or_else(|| format!("https://ec2.{region}.amazonaws.com"));
        let proxied = proxy::of(&self.opts);
        let via = proxied.as_ref().filter(|p| {
            url.parse()
                .is_ok_and(|u| proxy::matcher(p).intercept(&u).is_some())
        });
        let _ = API.set(format!(
            "{}{}",
            crate::error::shown(&url),
            via.map_or_else(String::new, |p| format!(
                " through the proxy {}",
                proxy::redacted(&p.url)
            ))
        ));
        let proxy_config = proxy_config(proxied)?;
        let left = self.rt.left();
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(left.min(Duration::from_secs(3)))
            .operation_attempt_timeout(left.mul_f64(0.4).max(Duration::from_secs(1)))
            .operation_timeout(left)
            .build();
        let client = self
            .rt
            .run("loading AWS credentials and configuration", async {
                let mut loader = aws_config::defaults(BehaviorVersion::latest())
                    .region(aws_config::Region::new(region))
                    .http_client(http_client(proxy_config))
                    .timeout_config(timeouts)
                    .retry_config(RetryConfig::standard().with_max_attempts(4));
                if let Some(p) = &self.opts.profile {
                    loader = loader.profile_name(p);
                }
                if let Some(files) = profile_files_without_home() {
                    loader = loader.profile_files(files);
                }
                let base = loader.load().await;
                let mut conf = aws_sdk_ec2::config::Builder::from(&base);
                if let Some(role) = &self.opts.role_arn {
                    let inner = aws_config::sts::AssumeRoleProvider::builder(role)
                        .session_name(session_name())
                        .configure(&base)
                        .build()
                        .await;
                    let file = role::cache_file(&self.run_dir, role);
                    let _ = ROLE_CACHE.set(file.clone());
                    conf = conf.credentials_provider(
                        aws_sdk_ec2::config::SharedCredentialsProvider::new(role::CachedRole {
                            inner,
                            file,
                        }),
                    );
                }
                // Only EC2 goes to endpoint_url (a VPC interface endpoint); STS keeps its own.
                if let Some(url) = &self.opts.endpoint_url {
                    conf = conf.endpoint_url(url);
                }
                Ok(aws_sdk_ec2::Client::from_conf(conf.build()))
            })?;
        *self.client.borrow_mut() = Some(client.clone());
        Ok(client)
    }
}

/// The proxy of every SDK call (EC2, STS, and the SDK's own IMDS credential fetch, which the
/// metadata addresses in no_proxy keep direct).
fn proxy_config(p: Option<proxy::Proxy>) -> Result<ProxyConfig> {
    let Some(p) = p else {
        return Ok(ProxyConfig::disabled());
    };
    ProxyConfig::all(&p.url)
        .map(|c| c.no_proxy(&p.no_proxy))
        .map_err(|e| Error::config(format!("proxy {}: {e}", proxy::redacted(&p.url))))
}

/// The SDK's HTTP client with the proxy and rustls on ring, so no C crypto library is linked.
fn http_client(proxy: ProxyConfig) -> aws_sdk_ec2::config::SharedHttpClient {
    aws_smithy_http_client::Builder::new().build_with_connector_fn(move |settings, components| {
        let mut b = aws_smithy_http_client::Connector::builder().proxy_config(proxy.clone());
        if let Some(s) = settings {
            b = b.connector_settings(s.clone());
        }
        if let Some(sleep) = components.and_then(|c| c.sleep_impl()) {
            b = b.sleep_impl(sleep);
        }
        b.tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
            .build()
    })
}

/// Pacemaker may run agents without HOME, and the SDK then finds no `~/.aws`: use the home
/// directory of the user we run as (root's /root), still honouring AWS_CONFIG_FILE and
/// AWS_SHARED_CREDENTIALS_FILE.
fn profile_files_without_home() -> Option<ProfileFiles> {
    if std::env::var_os("HOME").is_some() {
        return None;
    }
    let home = crate::cloud::account_home();
    let file = |var: &str, name: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join(".aws").join(name))
    };
    Some(
        ProfileFiles::builder()
            .with_file(ProfileFileKind::Config, file("AWS_CONFIG_FILE", "config"))
            .with_file(
                ProfileFileKind::Credentials,
                file("AWS_SHARED_CREDENTIALS_FILE", "credentials"),
            )
            .build(),
    )
}

fn session_name() -> String {
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default();
    let mut name = format!("cloudha-{host}");
    name.retain(|c| c.is_ascii_alphanumeric() || "=,.@-_".contains(c));
    name.truncate(64);
    name
}

fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}
