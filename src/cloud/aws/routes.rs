//! EC2 route tables for the route-table agent: one DescribeRouteTables for every table, the
//! ReplaceRoute/CreateRoute calls of all tables issued concurrently inside one deadline.

use aws_sdk_ec2::types::{AttributeBooleanValue, RouteState};
use futures::future::join_all;

use super::{Aws, filter, mac_string, parse_cidr4, sdk_error};
use crate::cloud::routes::{Change, Dest, EniInfo, Needs, Route, Routes, Selection, Table};
use crate::error::{Error, Result};
use crate::host::Link;

// CreateRoute and ReplaceRoute take the same fields, but their builders are distinct types.
macro_rules! route_to {
    ($call:expr, $table:expr, $dest:expr, $eni:expr) => {
        $call
            .route_table_id($table)
            .destination_cidr_block($dest)
            .network_interface_id($eni)
    };
}

/// The route of `rt` for `dest`, as the agent needs it.
fn route_for(rt: &aws_sdk_ec2::types::RouteTable, dest: &str) -> Option<Route> {
    let r = rt
        .routes()
        .iter()
        .find(|r| r.destination_cidr_block() == Some(dest))?;
    let eni = r.network_interface_id().map(str::to_string);
    let target = [
        r.network_interface_id(),
        r.instance_id(),
        r.gateway_id(),
        r.nat_gateway_id(),
        r.transit_gateway_id(),
        r.vpc_peering_connection_id(),
        r.egress_only_internet_gateway_id(),
        r.local_gateway_id(),
        r.carrier_gateway_id(),
        r.core_network_arn(),
    ]
    .into_iter()
    .flatten()
    .next()
    .unwrap_or("an unknown target")
    .to_string();
    Some(Route {
        eni,
        target,
        blackhole: r.state() == Some(&RouteState::Blackhole),
    })
}

/// The selected tables and their route for `dest` (all pages of one DescribeRouteTables).
async fn read_tables(
    ec2: &aws_sdk_ec2::Client,
    sel: &Selection,
    dest: Dest,
    vpc: &str,
) -> Result<Vec<Table>> {
    let want = dest.to_string();
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut req = ec2.describe_route_tables().set_next_token(token.take());
        req = match sel {
            Selection::Ids(ids) => req.set_route_table_ids(Some(ids.clone())),
            // EC2 filters for us: only tables of our VPC holding the destination.
            Selection::Auto => req
                .filters(filter("vpc-id", vpc))
                .filters(filter("route.destination-cidr-block", &want)),
        };
        let page = req
            .send()
            .await
            .map_err(|e| sdk_error("DescribeRouteTables", e))?;
        for rt in page.route_tables() {
            out.push(Table {
                id: rt.route_table_id().unwrap_or_default().to_string(),
                vpc: rt.vpc_id().unwrap_or_default().to_string(),
                route: route_for(rt, &want),
            });
        }
        match page.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => break,
        }
    }
    Ok(out)
}

/// Whether source/destination checking is on for the ENI.
async fn read_source_dest_check(ec2: &aws_sdk_ec2::Client, eni: &str) -> Result<bool> {
    let out = ec2
        .describe_network_interfaces()
        .network_interface_ids(eni)
        .send()
        .await
        .map_err(|e| sdk_error("DescribeNetworkInterfaces", e))?;
    let n = out
        .network_interfaces()
        .first()
        .ok_or_else(|| Error::host_args(format!("EC2 does not know this node's ENI {eni}")))?;
    // EC2 omits it only when it is the default, which is on.
    Ok(n.source_dest_check().unwrap_or(true))
}

impl Routes for Aws {
    fn eni(&self, nic: &Link) -> Result<EniInfo> {
        let eni = Aws::eni(self, nic)?;
        let imds = self.imds()?;
        let mac = mac_string(&nic.mac);
        let blocks = self.rt.run(
            "reading the VPC's CIDR blocks from instance metadata",
            async {
                imds.get(&format!(
                    "meta-data/network/interfaces/macs/{mac}/vpc-ipv4-cidr-blocks"
                ))
                .await
            },
        )?;
        let vpc_cidrs = blocks
            .split_whitespace()
            .filter_map(parse_cidr4)
            .map(|(net, len)| Dest::of(net, len))
            .collect();
        Ok(EniInfo {
            id: eni.id,
            vpc: eni.vpc,
            vpc_cidrs,
        })
    }

    fn tables(&self, sel: &Selection, dest: Dest, vpc: &str) -> Result<Vec<Table>> {
        let ec2 = self.ec2()?;
        self.rt
            .run("DescribeRouteTables", read_tables(&ec2, sel, dest, vpc))
    }

    fn tables_and_check(
        &self,
        sel: &Selection,
        dest: Dest,
        vpc: &str,
        eni: &str,
        check: bool,
    ) -> Result<(Vec<Table>, Option<bool>)> {
        let ec2 = self.ec2()?;
        self.rt
            .run("DescribeRouteTables and DescribeNetworkInterfaces", async {
                let (tables, on) = futures::join!(read_tables(&ec2, sel, dest, vpc), async {
                    if check {
                        read_source_dest_check(&ec2, eni).await.map(Some)
                    } else {
                        Ok(None)
                    }
                });
                // A table problem first, as when the reads ran one after the other.
                Ok((tables?, on?))
            })
    }

    fn point(&self, dest: Dest, eni: &str, changes: &[Change]) -> Vec<(String, Result<()>)> {
        let ec2 = match self.ec2() {
            Ok(c) => c,
            Err(e) => {
                return changes
                    .iter()
                    .map(|c| (c.table.clone(), Err(e.clone())))
                    .collect();
            }
        };
        let dest_s = dest.to_string();
        let calls = changes.iter().map(|c| {
            let (ec2, dest_s) = (&ec2, &dest_s);
            async move {
                let r = if c.create {
                    route_to!(ec2.create_route(), &c.table, dest_s, eni)
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(|e| sdk_error("CreateRoute", e))
                } else {
                    route_to!(ec2.replace_route(), &c.table, dest_s, eni)
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(|e| sdk_error("ReplaceRoute", e))
                };
                (c.table.clone(), r)
            }
        });
        let left = self.rt.left();
        match self
            .rt
            .run("ReplaceRoute", async { Ok(join_all(calls).await) })
        {
            Ok(results) => results,
            // Some calls may have landed: the confirming read tells which.
            Err(_) => changes
                .iter()
                .map(|c| {
                    (
                        c.table.clone(),
                        Err(Error::transient(format!(
                            "no answer from EC2 within the action's timeout (waited {:.1} s)",
                            left.as_secs_f64()
                        ))),
                    )
                })
                .collect(),
        }
    }

    fn source_dest_check(&self, eni: &str) -> Result<bool> {
        let ec2 = self.ec2()?;
        self.rt.run(
            "DescribeNetworkInterfaces",
            read_source_dest_check(&ec2, eni),
        )
    }

    fn disable_source_dest_check(&self, eni: &str) -> Result<()> {
        let ec2 = self.ec2()?;
        tracing::info!("turning source/destination check off on {eni}");
        self.call("ModifyNetworkInterfaceAttribute", || {
            ec2.modify_network_interface_attribute()
                .network_interface_id(eni)
                .source_dest_check(AttributeBooleanValue::builder().value(false).build())
                .send()
        })
        .map(|_| ())
    }

    fn permissions(
        &self,
        dest: Dest,
        eni: &str,
        tables: &[Table],
        needs: Needs,
    ) -> Result<Vec<String>> {
        let ec2 = self.ec2()?;
        let dest_s = dest.to_string();
        let mut denied = Vec::new();
        self.probe(&mut denied, "DescribeRouteTables", || {
            ec2.describe_route_tables()
                .filters(filter("vpc-id", "vpc-00000000"))
                .dry_run(true)
                .send()
        })?;
        // Per table: IAM policies may restrict route changes to some tables.
        for t in tables {
            let create = t.route.is_none();
            if (create && !needs.create) || (!create && !needs.replace) {
                continue;
            }
            let (action, ok) = if create {
                let call = || route_to!(ec2.create_route(), &t.id, &dest_s, eni).dry_run(true);
                (
                    "CreateRoute",
                    self.permitted("CreateRoute", || call().send())?,
                )
            } else {
                let call = || route_to!(ec2.replace_route(), &t.id, &dest_s, eni).dry_run(true);
                (
                    "ReplaceRoute",
                    self.permitted("ReplaceRoute", || call().send())?,
                )
            };
            if !ok {
                denied.push(format!("ec2:{action} on {}", t.id));
            }
        }
        if needs.read_source_dest_check {
            self.probe(&mut denied, "DescribeNetworkInterfaces", || {
                ec2.describe_network_interfaces()
                    .network_interface_ids(eni)
                    .dry_run(true)
                    .send()
            })?;
        }
        if needs.modify_source_dest_check {
            self.probe(&mut denied, "ModifyNetworkInterfaceAttribute", || {
                ec2.modify_network_interface_attribute()
                    .network_interface_id(eni)
                    .source_dest_check(AttributeBooleanValue::builder().value(false).build())
                    .dry_run(true)
                    .send()
            })?;
        }
        super::errors::lacking(&denied, "", "iam-policy-route-table.json")?;
        Ok(vec![format!(
            "EC2 API at {}: credentials valid, permissions granted (DryRun)",
            Routes::describe(self)
        )])
    }

    fn describe(&self) -> String {
        self.opts
            .endpoint_url
            .clone()
            .unwrap_or_else(|| "the regional endpoint".to_string())
    }
}
