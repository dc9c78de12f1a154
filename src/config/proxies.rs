//! Trusted reverse proxies (`TROVE_TRUSTED_PROXIES`): the networks whose `X-Forwarded-For`
//! header names the client. Behind a proxy every request comes from the proxy's address, so
//! per-address limits (logins) would put every client in one bucket — one attacker could lock
//! out everyone. A forwarding header is believed only from a listed peer, and only as far as
//! the chain of listed proxies goes: the client is the right-most address that is not a
//! trusted proxy, so a client cannot choose its address by sending the header itself.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Most networks accepted in the setting (a list beyond this is a mistake, and each request
/// checks them all).
const MAX_NETWORKS: usize = 64;
/// Most `X-Forwarded-For` entries looked at, from the right (bounded work per request).
const MAX_HOPS: usize = 16;

/// One network: an address and a prefix length (`10.0.0.0/8`, `::1/128`; a bare address is
/// the one host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    address: IpAddr,
    prefix: u8,
}

impl Network {
    /// Whether `ip` is inside this network (an IPv4 address inside an IPv6 network only when
    /// written as IPv4-mapped, and the other way round).
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.address, ip) {
            (IpAddr::V4(network), IpAddr::V4(ip)) => prefix_matches(
                network.to_bits().into(),
                ip.to_bits().into(),
                self.prefix,
                32,
            ),
            (IpAddr::V6(network), IpAddr::V6(ip)) => {
                prefix_matches(network.to_bits(), ip.to_bits(), self.prefix, 128)
            }
            _ => false,
        }
    }
}

/// Whether the first `prefix` of `width` bits of two addresses agree.
fn prefix_matches(network: u128, ip: u128, prefix: u8, width: u32) -> bool {
    let shift = width - u32::from(prefix);
    shift >= width || (network >> shift) == (ip >> shift)
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is (dual-stack listeners see those).
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

impl FromStr for Network {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address = canonical(
            address
                .parse::<IpAddr>()
                .map_err(|_| format!("{text:?} is not an address or network"))?,
        );
        let width = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => width,
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|prefix| *prefix <= width)
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0 to {width}"))?,
        };
        Ok(Self { address, prefix })
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

/// The trusted proxies' networks; empty (the default) trusts no forwarding header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Network>);

impl TrustedProxies {
    /// Parses a comma-separated list of addresses and networks.
    ///
    /// # Errors
    ///
    /// An entry that is not an address or network, or more than 64 of them.
    pub fn parse(list: &str) -> Result<Self, String> {
        Self::from_entries(list.split(',').filter(|entry| !entry.trim().is_empty()))
    }

    fn from_entries<'a>(entries: impl Iterator<Item = &'a str>) -> Result<Self, String> {
        let networks = entries
            .map(str::parse)
            .collect::<Result<Vec<Network>, String>>()?;
        if networks.len() > MAX_NETWORKS {
            return Err(format!("at most {MAX_NETWORKS} networks"));
        }
        Ok(Self(networks))
    }

    /// Whether no proxy is trusted.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` is a trusted proxy.
    #[must_use]
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|network| network.contains(ip))
    }

    /// The client's address for a request from `peer` carrying the `X-Forwarded-For` header
    /// values `forwarded` (in order): `peer` itself unless it is trusted; else the right-most
    /// forwarded address that is not trusted (at most 16 entries are looked at). An entry
    /// that is not an address ends the walk at the last trusted hop: garbage never becomes
    /// an address, and a proxy's address only merges clients, never separates them.
    #[must_use]
    pub fn client<'a>(&self, peer: IpAddr, forwarded: impl Iterator<Item = &'a str>) -> IpAddr {
        let mut client = canonical(peer);
        if !self.trusts(client) {
            return client;
        }
        let entries: Vec<&str> = forwarded.flat_map(|value| value.split(',')).collect();
        for entry in entries.iter().rev().take(MAX_HOPS) {
            let Some(hop) = parse_hop(entry) else {
                return client;
            };
            client = canonical(hop);
            if !self.trusts(client) {
                return client;
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: an address, possibly `[v6]`, `v4:port` or `[v6]:port`.
fn parse_hop(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip);
    }
    entry
        .parse::<std::net::SocketAddr>()
        .ok()
        .map(|socket| socket.ip())
        .or_else(|| {
            entry
                .strip_prefix('[')
                .and_then(|rest| rest.strip_suffix(']'))
                .and_then(|inner| inner.parse().ok())
        })
}

impl Serialize for TrustedProxies {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(ToString::to_string))
    }
}

impl<'de> Deserialize<'de> for TrustedProxies {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let entries = Vec::<String>::deserialize(deserializer)?;
        Self::from_entries(entries.iter().map(String::as_str)).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn networks_parse_and_contain_what_they_say() {
        let proxies = TrustedProxies::parse("10.0.0.0/8, 192.168.1.7 ,fd00::/8,::1").unwrap();
        for inside in [
            "10.1.2.3",
            "192.168.1.7",
            "fd12::1",
            "::1",
            "::ffff:10.9.9.9",
        ] {
            assert!(proxies.trusts(ip(inside)), "{inside}");
        }
        for outside in ["11.0.0.1", "192.168.1.8", "fe80::1", "::2", "203.0.113.9"] {
            assert!(!proxies.trusts(ip(outside)), "{outside}");
        }
        assert!(
            TrustedProxies::parse("0.0.0.0/0")
                .unwrap()
                .trusts(ip("8.8.8.8"))
        );
        assert!(TrustedProxies::parse("").unwrap().is_empty());
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "proxy.local",
            "10.0.0.0/x",
            "1.2.3",
        ] {
            assert!(TrustedProxies::parse(bad).is_err(), "{bad}");
        }
        let too_many = vec!["10.0.0.1"; MAX_NETWORKS + 1].join(",");
        assert!(TrustedProxies::parse(&too_many).is_err());
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_hop_and_only_behind_a_trusted_peer() {
        let proxies = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let client = |peer: &str, headers: &[&str]| {
            proxies
                .client(ip(peer), headers.iter().copied())
                .to_string()
        };
        // Not from a proxy: the header is the client's own words, ignored.
        assert_eq!(client("203.0.113.5", &["198.51.100.1"]), "203.0.113.5");
        // From the proxy: the address it saw.
        assert_eq!(client("10.0.0.2", &["198.51.100.1"]), "198.51.100.1");
        // A client's forged entries sit left of what the proxy appended.
        assert_eq!(
            client("10.0.0.2", &["1.1.1.1, 2.2.2.2", "198.51.100.1"]),
            "198.51.100.1"
        );
        // A chain of trusted proxies is walked through.
        assert_eq!(
            client("10.0.0.2", &["198.51.100.1, 10.0.0.9, 10.0.0.3"]),
            "198.51.100.1"
        );
        // Garbage ends the walk at the last trusted hop.
        assert_eq!(client("10.0.0.2", &["<script>, 10.0.0.3"]), "10.0.0.3");
        // No header: the proxy itself.
        assert_eq!(client("10.0.0.2", &[]), "10.0.0.2");
        // Ports and brackets.
        assert_eq!(client("10.0.0.2", &["[2001:db8::1]:443"]), "2001:db8::1");
        assert_eq!(client("10.0.0.2", &["198.51.100.1:5000"]), "198.51.100.1");
        // Only 16 hops are looked at: beyond them, the last trusted hop looked at.
        let long = vec!["10.0.0.1"; 40].join(",");
        assert_eq!(
            client("10.0.0.2", &[&format!("1.2.3.4,{long}")]),
            "10.0.0.1"
        );
        // Untrusted peers never consult the list at all.
        assert_eq!(
            TrustedProxies::default()
                .client(ip("10.0.0.2"), ["198.51.100.1"].into_iter())
                .to_string(),
            "10.0.0.2"
        );
    }
}
