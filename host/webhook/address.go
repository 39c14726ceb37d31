package webhook

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// allowHint is how an app opts in to private addresses; every refusal repeats it, because the
// person reading the error is usually testing against a local receiver.
const allowHint = `to allow private addresses, set "webhooks": {"allowPrivateNetwork": true} in app.json`

// reservedRange is a block of addresses a webhook must not reach unless the app opts in.
type reservedRange struct {
	prefix netip.Prefix
	kind   string
}

// reserved4 lists the IPv4 blocks that are not public unicast (IANA special-purpose registry).
// Shared address space and the documentation blocks are here too: 100.64/10 hosts, among
// others, Alibaba Cloud's metadata service (100.100.100.200).
var reserved4 = []reservedRange{
	{netip.MustParsePrefix("0.0.0.0/8"), "unspecified"},
	{netip.MustParsePrefix("10.0.0.0/8"), "private"},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared (carrier-grade NAT)"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local (cloud metadata)"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private"},
	{netip.MustParsePrefix("192.0.0.0/24"), "reserved"},
	{netip.MustParsePrefix("192.0.2.0/24"), "documentation"},
	{netip.MustParsePrefix("192.88.99.0/24"), "reserved (6to4 relay)"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("198.51.100.0/24"), "documentation"},
	{netip.MustParsePrefix("203.0.113.0/24"), "documentation"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},
}

// reserved6 lists the IPv6 blocks that are not public unicast. Public unicast is 2000::/3,
// so everything outside it is refused as well (see classify).
var reserved6 = []reservedRange{
	{netip.MustParsePrefix("::/128"), "unspecified"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	// IPv4-compatible addresses (::a.b.c.d), deprecated; some stacks still map them to IPv4.
	{netip.MustParsePrefix("::/96"), "reserved (IPv4-compatible)"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "private (local NAT64)"},
	{netip.MustParsePrefix("100::/64"), "reserved (discard)"},
	// IETF protocol assignments, among them Teredo (2001::/32), whose addresses embed IPv4.
	{netip.MustParsePrefix("2001::/23"), "reserved"},
	{netip.MustParsePrefix("2001:db8::/32"), "documentation"},
	{netip.MustParsePrefix("3fff::/20"), "documentation"},
	{netip.MustParsePrefix("5f00::/16"), "reserved (SRv6)"},
	{netip.MustParsePrefix("fc00::/7"), "private (unique local)"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("fec0::/10"), "private (site-local)"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
}

var (
	globalUnicast6 = netip.MustParsePrefix("2000::/3")
	// nat64 and sixToFour embed an IPv4 address a gateway will forward to: 64:ff9b::7f00:1
	// can reach 127.0.0.1 of the gateway's side, so the embedded address is checked too.
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
)

// classify says why ip is not a public address ("loopback", "private", ...), or "" when it
// is public. It is the single place the private-address rule lives: the URL check, the
// resolver check and the check of the socket actually connected all call it.
func classify(ip netip.Addr) string {
	if !ip.IsValid() {
		return "invalid"
	}
	// ::ffff:127.0.0.1 is 127.0.0.1 to the kernel; the zone of fe80::1%eth0 does not matter.
	ip = ip.Unmap().WithZone("")
	if ip.Is4() {
		return lookup(reserved4, ip)
	}
	if kind := lookup(reserved6, ip); kind != "" {
		return kind
	}
	b := ip.As16()
	if nat64.Contains(ip) {
		if kind := lookup(reserved4, netip.AddrFrom4([4]byte(b[12:16]))); kind != "" {
			return kind + " (via NAT64)"
		}
		return ""
	}
	if !globalUnicast6.Contains(ip) {
		return "reserved"
	}
	if sixToFour.Contains(ip) {
		if kind := lookup(reserved4, netip.AddrFrom4([4]byte(b[2:6]))); kind != "" {
			return kind + " (via 6to4)"
		}
	}
	return ""
}

func lookup(ranges []reservedRange, ip netip.Addr) string {
	for _, r := range ranges {
		if r.prefix.Contains(ip) {
			return r.kind
		}
	}
	return ""
}

// forbidden is the error for a refused address. host is what the URL said, so the reader can
// match it to the element's e.json; ip is what it turned out to be.
func forbidden(host string, ip netip.Addr, kind string) error {
	ip = ip.WithZone("")
	if host == "" || host == ip.String() {
		return fmt.Errorf("%w: %s is a %s address; %s", ErrForbiddenAddress, ip, kind, allowHint)
	}
	return fmt.Errorf("%w: %s is %s, a %s address; %s", ErrForbiddenAddress, host, ip, kind, allowHint)
}

// literalIP is the address a URL host denotes without DNS: an IP literal, or one of the legacy
// IPv4 spellings inet_aton accepts and browsers normalise ("2130706433", "0x7f000001",
// "017700000001", "127.1"). Those spellings would otherwise go to the resolver as names, where
// the C library turns them into 127.0.0.1 and Go's own resolver does not, so the same URL
// would be refused on one build and reach loopback on another.
func literalIP(host string) (netip.Addr, bool) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return ip, true
	}
	return parseLegacyIPv4(host)
}

// parseLegacyIPv4 parses inet_aton's forms: one to four parts separated by dots, each decimal,
// octal (leading 0) or hexadecimal (0x), the last part filling the remaining bytes.
func parseLegacyIPv4(s string) (netip.Addr, bool) {
	s = strings.TrimSuffix(s, ".") // a fully qualified "127.0.0.1." resolves the same
	if s == "" {
		return netip.Addr{}, false
	}
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	var v uint32
	for i, p := range parts {
		n, ok := parseLegacyPart(p)
		if !ok {
			return netip.Addr{}, false
		}
		if i < len(parts)-1 {
			if n > 0xff {
				return netip.Addr{}, false
			}
			v |= uint32(n) << (24 - 8*i)
			continue
		}
		if bits := 8 * (5 - len(parts)); bits < 32 && n >= 1<<bits {
			return netip.Addr{}, false
		}
		v |= uint32(n)
	}
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

func parseLegacyPart(p string) (uint64, bool) {
	base := 10
	switch {
	case len(p) > 2 && (p[:2] == "0x" || p[:2] == "0X"):
		p, base = p[2:], 16
	case len(p) > 1 && p[0] == '0':
		p, base = p[1:], 8
	}
	if p == "" || p[0] == '+' || p[0] == '-' {
		return 0, false
	}
	n, err := strconv.ParseUint(p, base, 32)
	return n, err == nil
}

// isLocalhost reports names RFC 6761 reserves for loopback ("localhost", "x.localhost", any
// case, fully qualified or not). They are refused without asking DNS: resolvers differ in how
// they treat them, and some forward them to a DNS server that may answer anything.
func isLocalhost(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	return host == "localhost" || strings.HasSuffix(host, ".localhost")
}
