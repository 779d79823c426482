package media

import (
	"net/netip"
	"net/url"
	"strings"
)

// disallowed says why u may not be fetched under hosts (media.hosts), or
// "" when it may: an https URL without a user name or password, whose host
// is one of hosts or, for an entry "*.example.com", below example.com.
func disallowed(u *url.URL, hosts []string) string {
	if u.Scheme != "https" {
		return "only https URLs are fetched"
	}
	if u.User != nil {
		return "the URL holds a user name or password"
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if host == "" {
		return "the URL names no host"
	}
	if !hostAllowed(host, hosts) {
		return "its host " + host + " is not in media.hosts"
	}
	return ""
}

func hostAllowed(host string, hosts []string) bool {
	for _, h := range hosts {
		h = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
		if suffix, ok := strings.CutPrefix(h, "*."); ok {
			if suffix != "" && strings.HasSuffix(host, "."+suffix) {
				return true
			}
		} else if h != "" && host == h {
			return true
		}
	}
	return false
}

// nonPublic are the special-purpose ranges (IANA's registries) that
// netip.Addr's methods do not name, where no public media server is: shared
// address space (carrier-grade NAT), documentation, benchmarking, reserved
// and "this network" ranges, and the IPv6 ranges that embed an IPv4
// address (NAT64, 6to4, Teredo and IPv4-compatible), which could name a
// private one.
var nonPublic = func() []netip.Prefix {
	var out []netip.Prefix
	for _, p := range []string{
		"0.0.0.0/8", "100.64.0.0/10", "192.0.0.0/24", "192.0.2.0/24", "198.18.0.0/15",
		"198.51.100.0/24", "203.0.113.0/24", "240.0.0.0/4",
		"::/96", "64:ff9b::/96", "64:ff9b:1::/48", "100::/64", "2001::/23", "2001:db8::/32",
		"2002::/16", "fec0::/10",
	} {
		out = append(out, netip.MustParsePrefix(p))
	}
	return out
}()

// public reports whether ip is a public unicast address: not loopback,
// private, link-local, unspecified, multicast, broadcast or another
// special-purpose range (see nonPublic). An IPv4-mapped IPv6 address is
// judged as the IPv4 address it maps.
func public(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || !ip.IsGlobalUnicast() || ip.IsPrivate() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}
