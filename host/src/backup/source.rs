//! Which node to read the RDB from: an online replica when the instance
//! prefers one (so the master's fork does not hit the application), else
//! the master, with the reason recorded.

use crate::config::InstanceConfig;
use crate::replication::{Connection, Endpoint, ReplError, info_field};

/// The node chosen for a backup.
#[derive(Debug, Clone)]
pub struct Chosen {
    pub endpoint: Endpoint,
    pub role: String,
    pub redis_version: String,
    /// Set when a replica was preferred but the master is used.
    pub fallback_reason: Option<String>,
}

/// The endpoint of node `addr` of `instance`, with its credentials.
pub fn endpoint_for(instance: &InstanceConfig, addr: &str) -> Endpoint {
    let mut ep = Endpoint::new(&instance.name, addr);
    ep.username = instance.username.clone();
    ep.password = instance.password.clone();
    ep.connect_timeout = instance.connect_timeout;
    ep.read_timeout = instance.read_timeout;
    ep.tls = instance.tls.clone();
    ep
}

/// An online replica named by the master's `INFO replication`, lowest lag first.
fn online_replicas(info: &[(String, String)]) -> Vec<String> {
    let mut found: Vec<(u64, String)> = info
        .iter()
        .filter(|(k, _)| k.starts_with("slave") && k[5..].bytes().all(|b| b.is_ascii_digit()))
        .filter_map(|(_, v)| {
            let kv: Vec<(&str, &str)> = v.split(',').filter_map(|p| p.split_once('=')).collect();
            let get = |n: &str| kv.iter().find(|(k, _)| *k == n).map(|(_, v)| *v);
            if get("state")? != "online" {
                return None;
            }
            let lag = get("lag").and_then(|l| l.parse().ok()).unwrap_or(u64::MAX);
            Some((lag, format!("{}:{}", get("ip")?, get("port")?)))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, a)| a).collect()
}

/// Checks that `addr` is a replica with a live master link; returns its
/// Redis version.
async fn usable_replica(instance: &InstanceConfig, addr: &str) -> Result<String, String> {
    let ep = endpoint_for(instance, addr);
    let mut c = Connection::open(&ep).await.map_err(|e| e.message)?;
    let info = c.info("replication").await.map_err(|e| e.message)?;
    match (
        info_field(&info, "role"),
        info_field(&info, "master_link_status"),
    ) {
        (Some("slave"), Some("up")) => {}
        (Some("slave"), link) => {
            return Err(format!("its master link is {}", link.unwrap_or("unknown")));
        }
        (role, _) => {
            return Err(format!(
                "it is not a replica (role {})",
                role.unwrap_or("unknown")
            ));
        }
    }
    let server = c.info("server").await.map_err(|e| e.message)?;
    Ok(info_field(&server, "redis_version")
        .unwrap_or("unknown")
        .to_string())
}

/// Picks the node to read from.
pub async fn choose(instance: &InstanceConfig) -> Result<Chosen, ReplError> {
    let master = endpoint_for(instance, &instance.address);
    let mut conn = Connection::open(&master).await?;
    let server = conn.info("server").await?;
    let master_version = info_field(&server, "redis_version")
        .unwrap_or("unknown")
        .to_string();
    let replication = conn.info("replication").await?;
    let role = match info_field(&replication, "role") {
        Some("slave") => "replica",
        _ => "master",
    };
    if !instance.prefer_replica {
        return Ok(Chosen {
            endpoint: master,
            role: role.into(),
            redis_version: master_version,
            fallback_reason: None,
        });
    }
    let candidates = match &instance.replica {
        Some(r) => vec![r.clone()],
        None => online_replicas(&replication),
    };
    let mut reasons = Vec::new();
    for addr in &candidates {
        match usable_replica(instance, addr).await {
            Ok(version) => {
                return Ok(Chosen {
                    endpoint: endpoint_for(instance, addr),
                    role: "replica".into(),
                    redis_version: version,
                    fallback_reason: None,
                });
            }
            Err(why) => reasons.push(format!("replica {addr}: {why}")),
        }
    }
    let reason = if candidates.is_empty() {
        format!("no online replica in the master's INFO replication (role {role})")
    } else {
        reasons.join("; ")
    };
    tracing::warn!(instance = %instance.name, "backing up from the master: {reason}");
    Ok(Chosen {
        endpoint: master,
        role: role.into(),
        redis_version: master_version,
        fallback_reason: Some(reason),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn online_replicas_by_lag() {
        let info: Vec<(String, String)> = [
            ("role", "master"),
            (
                "slave0",
                "ip=10.0.0.1,port=6380,state=online,offset=5,lag=3",
            ),
            (
                "slave1",
                "ip=10.0.0.2,port=6381,state=wait_bgsave,offset=0,lag=0",
            ),
            (
                "slave2",
                "ip=10.0.0.3,port=6382,state=online,offset=5,lag=0",
            ),
            ("slave_read_repl_offset", "9"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(online_replicas(&info), ["10.0.0.3:6382", "10.0.0.1:6380"]);
    }
}
