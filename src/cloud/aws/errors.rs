//! SDK failures classified by kind (the kind decides the exit code), and the pre-flight's
//! permission probe built on that classification.

use super::*;

pub(super) type Resp = aws_sdk_ec2::config::http::HttpResponse;

/// The pre-flight's verdict on the permission probes: `denied` names what is missing (`on` says
/// where, or is empty), `policy` the shipped example that grants it.
pub(super) fn lacking(denied: &[String], on: &str, policy: &str) -> Result<()> {
    if denied.is_empty() {
        return Ok(());
    }
    Err(Error::permission(format!(
        "the AWS credentials of this node lack {}{on} (see {policy} in \
         /usr/share/doc/cloudha/examples/)",
        denied.join(", ")
    )))
}

impl Aws {
    /// One EC2 call within the deadline, its failure classified (`send` is the request's
    /// `send()`).
    pub(super) fn call<T, E, F>(&self, action: &str, send: impl FnOnce() -> F) -> Result<T>
    where
        F: Future<Output = std::result::Result<T, SdkError<E, Resp>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        self.rt.run(action, async {
            send().await.map_err(|e| sdk_error(action, e))
        })
    }

    /// One permission probe for the pre-flight: a call that cannot change anything (DryRun,
    /// or no address at all); a denial adds `ec2:<action>` to `denied`.
    pub(super) fn probe<T, E, F>(
        &self,
        denied: &mut Vec<String>,
        action: &str,
        call: impl FnOnce() -> F,
    ) -> Result<()>
    where
        F: Future<Output = std::result::Result<T, SdkError<E, Resp>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        if !self.permitted(action, call)? {
            denied.push(format!("ec2:{action}"));
        }
        Ok(())
    }

    /// Whether a call that cannot change anything (DryRun, or no address at all) is allowed.
    pub(super) fn permitted<T, E, F>(&self, action: &str, call: impl FnOnce() -> F) -> Result<bool>
    where
        F: Future<Output = std::result::Result<T, SdkError<E, Resp>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let answer = self.rt.run(action, async { Ok(call().await) })?;
        Ok(match answer {
            Ok(_) => true,
            Err(e) => match e.code() {
                Some("DryRunOperation") => true,
                Some("UnauthorizedOperation" | "AccessDenied") => false,
                // Authorised, then refused on the deliberately empty parameters.
                Some(
                    "MissingParameter"
                    | "InvalidParameterValue"
                    | "InvalidParameterCombination"
                    | "InvalidAssociationID.NotFound",
                ) => true,
                _ => return Err(sdk_error(action, e)),
            },
        })
    }
}

/// Classify an SDK failure: the kind decides the exit code, so throttling and outages must
/// never look like a configuration error or a stopped resource.
pub(super) fn sdk_error<E>(action: &str, e: SdkError<E, Resp>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = e.raw_response().map(|r| r.status().as_u16());
    let code = e.code().map(str::to_string);
    let said = match (&code, e.message()) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c.clone(),
        _ => DisplayErrorContext(&e).to_string(),
    };
    let what = format!("EC2 {action} failed: {said}");
    match &e {
        SdkError::TimeoutError(_) => {
            return Error::transient(format!("EC2 {action}: no answer in time"));
        }
        SdkError::DispatchFailure(d) if d.is_timeout() || d.is_io() => {
            let to = super::API.get().map_or("the endpoint", String::as_str);
            return Error::transient(format!(
                "EC2 {action}: cannot reach {to} ({})",
                crate::cloud::root_cause(&e)
            ));
        }
        SdkError::ResponseError(_) => return Error::transient(what),
        SdkError::ServiceError(_) => {}
        _ => {
            let full = DisplayErrorContext(&e).to_string();
            if full.contains("credentials") || full.contains("identity") {
                return Error::permission(format!(
                    "EC2 {action}: no usable AWS credentials on this node ({full})"
                ));
            }
            return Error::transient(format!("EC2 {action}: {full}"));
        }
    }
    match code.as_deref().unwrap_or("") {
        "RequestLimitExceeded"
        | "Throttling"
        | "ThrottlingException"
        | "RequestThrottled"
        | "InternalError"
        | "InternalFailure"
        | "ServiceUnavailable"
        | "Unavailable" => Error::transient(what),
        "RequestExpired" | "SignatureDoesNotMatch"
            if said.contains("expired") || said.contains("time") =>
        {
            Error::permission(format!("{what} (is this node's clock right? chrony/NTP)"))
        }
        "UnauthorizedOperation" | "AccessDenied" | "AccessDeniedException" => {
            Error::permission(format!(
                "{what} (grant ec2:{action} to this node's role; see the IAM policy in the docs)"
            ))
        }
        "AuthFailure"
        | "InvalidClientTokenId"
        | "UnrecognizedClientException"
        | "SignatureDoesNotMatch"
        | "ExpiredToken"
        | "RequestExpired"
        | "Blocked"
        | "OptInRequired" => {
            // Kept assumed-role credentials that EC2 refuses are assumed afresh next time.
            if let Some(f) = super::ROLE_CACHE.get() {
                super::role::forget(f);
            }
            Error::permission(what)
        }
        "InvalidAllocationID.NotFound" | "InvalidRouteTableID.NotFound" | "RouteLimitExceeded" => {
            Error::config(what)
        }
        // Someone changed the table between our read and our write: try again.
        "RouteAlreadyExists" | "InvalidRoute.NotFound" => Error::transient(what),
        "InvalidNetworkInterfaceID.NotFound"
        | "InvalidParameterValue"
        | "InvalidParameterCombination"
        | "PrivateIpAddressLimitExceeded" => Error::host_args(what),
        _ if status.is_some_and(|s| s >= 500) => Error::transient(what),
        _ => Error::failed(what),
    }
}
