//! ICE facts: the host addresses offered, the UDP sockets of a peer, and the networks media
//! may come from.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;

use crate::config::IceConfig;

/// What ICE is allowed to do, resolved from the configuration once.
#[derive(Debug, Clone)]
pub struct Ice {
    cfg: IceConfig,
    allowed: Vec<IpNet>,
}

impl Ice {
    /// Checks and resolves `cfg`.
    pub fn new(cfg: &IceConfig) -> anyhow::Result<Self> {
        let mut allowed = Vec::new();
        for n in &cfg.allowed_networks {
            let net: IpNet = n
                .parse()
                .or_else(|_| n.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| anyhow::anyhow!("ice.allowed_networks: {n:?} is not a network (CIDR) or an address"))?;
            allowed.push(net);
        }
        if cfg.port_min == 0 || cfg.port_min > cfg.port_max {
            anyhow::bail!("ice.port_min..ice.port_max ({}..{}) is not a range of ports", cfg.port_min, cfg.port_max);
        }
        Ok(Self { cfg: cfg.clone(), allowed })
    }

    /// The STUN server for the browser (`features.ice.url`).
    pub fn stun_url(&self) -> &str {
        &self.cfg.stun_url
    }

    /// Whether media or a candidate from `ip` is allowed.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.allowed.is_empty() || self.allowed.iter().any(|n| n.contains(&ip))
    }

    /// The host addresses to offer.
    pub fn addresses(&self) -> Vec<IpAddr> {
        if !self.cfg.addresses.is_empty() {
            return self.cfg.addresses.clone();
        }
        let mut out = Vec::new();
        if let Ok(ifs) = nix::ifaddrs::getifaddrs() {
            for i in ifs {
                if !i.flags.contains(nix::net::if_::InterfaceFlags::IFF_UP) {
                    continue;
                }
                let Some(a) = i.address else { continue };
                let ip = if let Some(v4) = a.as_sockaddr_in() {
                    IpAddr::V4(v4.ip())
                } else if let Some(v6) = a.as_sockaddr_in6() {
                    IpAddr::V6(v6.ip())
                } else {
                    continue;
                };
                let link_local = match ip {
                    IpAddr::V4(v4) => v4.is_link_local(),
                    IpAddr::V6(v6) => v6.is_unicast_link_local(),
                };
                if link_local || (ip.is_loopback() && !self.cfg.loopback) || out.contains(&ip) {
                    continue;
                }
                out.push(ip);
            }
        }
        if out.is_empty() && self.cfg.loopback {
            out.push(IpAddr::from([127, 0, 0, 1]));
        }
        out
    }

    /// A UDP socket on `ip` at a port of the range (tried from a random start).
    pub async fn bind(&self, ip: IpAddr) -> std::io::Result<Arc<tokio::net::UdpSocket>> {
        let (lo, hi) = (u32::from(self.cfg.port_min), u32::from(self.cfg.port_max));
        let span = hi - lo + 1;
        let mut seed = [0u8; 4];
        let _ = getrandom::fill(&mut seed);
        let start = u32::from_le_bytes(seed) % span;
        let mut last = std::io::Error::other("no port");
        for k in 0..span.min(64) {
            let port = (lo + (start + k) % span) as u16;
            match tokio::net::UdpSocket::bind(SocketAddr::new(ip, port)).await {
                Ok(s) => return Ok(Arc::new(s)),
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

/// An IPv4-mapped IPv6 address as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_allow_what_they_contain() {
        let cfg =
            IceConfig { allowed_networks: vec!["192.168.0.0/16".into(), "10.1.2.3".into()], ..IceConfig::default() };
        let ice = Ice::new(&cfg).unwrap_or_else(|e| panic!("{e}"));
        assert!(ice.allows("192.168.7.1".parse().unwrap_or_else(|e| panic!("{e}"))));
        assert!(ice.allows("::ffff:10.1.2.3".parse().unwrap_or_else(|e| panic!("{e}"))));
        assert!(!ice.allows("10.1.2.4".parse().unwrap_or_else(|e| panic!("{e}"))));
        assert!(
            Ice::new(&IceConfig::default())
                .unwrap_or_else(|e| panic!("{e}"))
                .allows("8.8.8.8".parse().unwrap_or_else(|e| panic!("{e}")))
        );
        let bad = IceConfig { allowed_networks: vec!["nope".into()], ..IceConfig::default() };
        assert!(Ice::new(&bad).is_err());
    }
}
