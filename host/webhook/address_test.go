package webhook

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		ip, kind string
	}{
		{"8.8.8.8", ""},
		{"1.1.1.1", ""},
		{"93.184.216.34", ""},
		{"::ffff:8.8.8.8", ""},
		{"2606:4700:4700::1111", ""},
		{"2a00:1450:4001:800::200e", ""},
		{"64:ff9b::808:808", ""}, // NAT64 of a public address
		{"2002:808:808::1", ""},  // 6to4 of a public address
		{"127.0.0.1", "loopback"},
		{"127.255.255.254", "loopback"},
		{"::1", "loopback"},
		{"::ffff:127.0.0.1", "loopback"},
		{"0.0.0.0", "unspecified"},
		{"0.1.2.3", "unspecified"},
		{"::", "unspecified"},
		{"::ffff:0.0.0.0", "unspecified"},
		{"10.0.0.1", "private"},
		{"172.16.0.1", "private"},
		{"172.31.255.255", "private"},
		{"192.168.0.1", "private"},
		{"::ffff:10.0.0.1", "private"},
		{"169.254.169.254", "link-local (cloud metadata)"},
		{"::ffff:a9fe:a9fe", "link-local (cloud metadata)"},
		{"100.100.100.200", "shared (carrier-grade NAT)"},
		{"fe80::1", "link-local"},
		{"fe80::1%eth0", "link-local"},
		{"fc00::1", "private (unique local)"},
		{"fd00:ec2::254", "private (unique local)"},
		{"fec0::1", "private (site-local)"},
		{"::127.0.0.1", "reserved (IPv4-compatible)"},
		{"64:ff9b::7f00:1", "loopback (via NAT64)"},
		{"64:ff9b::a9fe:a9fe", "link-local (cloud metadata) (via NAT64)"},
		{"64:ff9b:1::1", "private (local NAT64)"},
		{"2002:7f00:1::1", "loopback (via 6to4)"},
		{"2002:c0a8:101::1", "private (via 6to4)"},
		{"2001::1", "reserved"},
		{"2001:db8::1", "documentation"},
		{"192.0.2.1", "documentation"},
		{"198.18.0.1", "benchmarking"},
		{"224.0.0.1", "multicast"},
		{"ff02::1", "multicast"},
		{"255.255.255.255", "reserved"},
		{"240.0.0.1", "reserved"},
		{"4000::1", "reserved"},
	} {
		ip := netip.MustParseAddr(tc.ip)
		require.Equal(t, tc.kind, classify(ip), tc.ip)
	}
	require.Equal(t, "invalid", classify(netip.Addr{}))
}

func TestLiteralIP(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		host, want string
	}{
		{"127.0.0.1", "127.0.0.1"},
		{"::1", "::1"},
		{"2130706433", "127.0.0.1"},
		{"0x7f000001", "127.0.0.1"},
		{"0X7F000001", "127.0.0.1"},
		{"017700000001", "127.0.0.1"},
		{"0177.0.0.1", "127.0.0.1"},
		{"0x7f.0.0.1", "127.0.0.1"},
		{"127.1", "127.0.0.1"},
		{"127.0.1", "127.0.0.1"},
		{"127.000.000.001", "127.0.0.1"},
		{"127.0.0.1.", "127.0.0.1"},
		{"0", "0.0.0.0"},
		{"169.254.43518", "169.254.169.254"},
		{"2852039166", "169.254.169.254"},
		{"4294967295", "255.255.255.255"},
	} {
		ip, ok := literalIP(tc.host)
		require.True(t, ok, tc.host)
		require.Equal(t, tc.want, ip.String(), tc.host)
	}
	for _, host := range []string{
		"example.com", "localhost", "", ".", "4294967296", "1.2.3.4.5", "256.0.0.1", "1.2.65536",
		"0x", "08", "1..2", "+1", "-1", "1_000", "0x1g", "a.b.c.d", "1e3",
	} {
		_, ok := literalIP(host)
		require.False(t, ok, "%q", host)
	}
}

func TestIsLocalhost(t *testing.T) {
	t.Parallel()
	for _, h := range []string{"localhost", "LocalHost", "localhost.", "api.localhost", "a.b.LOCALHOST."} {
		require.True(t, isLocalhost(h), h)
	}
	for _, h := range []string{"localhost.example.com", "notlocalhost", "example.com", "localhostx"} {
		require.False(t, isLocalhost(h), h)
	}
}

// fakeDNS makes every name resolve to ips, and counts the lookups.
func fakeDNS(c *Client, ips ...string) *atomic.Int64 {
	n := new(atomic.Int64)
	c.resolve = func(context.Context, string) ([]netip.Addr, error) {
		n.Add(1)
		out := make([]netip.Addr, len(ips))
		for i, ip := range ips {
			out[i] = netip.MustParseAddr(ip)
		}
		return out, nil
	}
	return n
}

// receiver is a loopback server that counts its requests.
func receiver(t *testing.T) (port string, hits *atomic.Int64) {
	t.Helper()
	hits = new(atomic.Int64)
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	t.Cleanup(srv.Close)
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	require.NoError(t, err)
	return port, hits
}

// A public-looking name whose DNS answer is private (DNS rebinding, or simply a hostile zone)
// is refused where it is dialed.
func TestDialChecksResolvedAddresses(t *testing.T) {
	t.Parallel()
	port, hits := receiver(t)
	for _, answer := range [][]string{
		{"127.0.0.1"},
		{"::ffff:127.0.0.1"},
		{"::1"},
		{"10.0.0.1", "169.254.169.254", "127.0.0.1"},
	} {
		c := New(Options{})
		lookups := fakeDNS(c, answer...)
		_, err := c.Deliver(context.Background(), Request{URL: "http://hooks.example.com:" + port + "/", Body: []byte(`{}`)})
		require.ErrorIs(t, err, ErrForbiddenAddress, "%v", answer)
		require.Contains(t, err.Error(), "hooks.example.com is "+answer[0])
		require.Equal(t, int64(1), lookups.Load())
	}
	require.Zero(t, hits.Load())
}

// With the opt-in, the same answer is dialed, by the address checked (the name is resolved
// once, by us).
func TestDialAllowPrivateUsesResolvedAddress(t *testing.T) {
	t.Parallel()
	port, hits := receiver(t)
	c := New(Options{AllowPrivate: true})
	lookups := fakeDNS(c, "::ffff:127.0.0.1")
	_, err := c.Deliver(context.Background(), Request{URL: "http://hooks.example.com:" + port + "/", Body: []byte(`{}`)})
	require.NoError(t, err)
	require.Equal(t, int64(1), hits.Load())
	require.Equal(t, int64(1), lookups.Load())
}

// Refused addresses among several are skipped, not fatal: the allowed ones are dialed, by IP.
func TestDialSkipsRefusedAddresses(t *testing.T) {
	t.Parallel()
	c := New(Options{})
	fakeDNS(c, "127.0.0.1", "8.8.8.8", "169.254.169.254", "1.1.1.1")
	var dialed []string
	errNoDial := errors.New("test: not dialing out")
	// Control runs before connect: record the address and stop, so no packet leaves.
	c.dialer.Control = func(_, address string, _ syscall.RawConn) error {
		dialed = append(dialed, address)
		return errNoDial
	}
	_, err := c.dialContext(context.Background(), "tcp", "hooks.example.com:80")
	require.ErrorIs(t, err, errNoDial, "a dial error says more than the refusal")
	require.Equal(t, []string{"8.8.8.8:80", "1.1.1.1:80"}, dialed)

	c = New(Options{})
	fakeDNS(c)
	_, err = c.dialContext(context.Background(), "tcp", "hooks.example.com:80")
	require.Error(t, err, "no addresses")
	require.NotErrorIs(t, err, ErrForbiddenAddress)
}

func TestControlRefusesWhateverIsDialed(t *testing.T) {
	t.Parallel()
	c := New(Options{})
	for _, addr := range []string{"127.0.0.1:80", "[::1]:443", "[::ffff:10.0.0.1]:80", "169.254.169.254:80", "[fe80::1%eth0]:80", "0.0.0.0:80", "not an address"} {
		require.ErrorIs(t, c.control("tcp", addr, nil), ErrForbiddenAddress, addr)
	}
	for _, addr := range []string{"8.8.8.8:443", "[2606:4700:4700::1111]:443"} {
		require.NoError(t, c.control("tcp", addr, nil), addr)
	}
	require.NoError(t, New(Options{AllowPrivate: true}).control("tcp", "127.0.0.1:80", nil))
}

// Even if the resolver step were bypassed, the socket check stops the connect.
func TestControlStopsTheConnect(t *testing.T) {
	t.Parallel()
	port, hits := receiver(t)
	c := New(Options{})
	_, err := c.dialer.DialContext(context.Background(), "tcp", "127.0.0.1:"+port)
	require.ErrorIs(t, err, ErrForbiddenAddress)
	require.Zero(t, hits.Load())
}

func TestExcerpt(t *testing.T) {
	t.Parallel()
	require.Equal(t, "a  b", excerpt([]byte("  a\r\nb\x00\x1b ")))
	require.Equal(t, "?", excerpt([]byte{0xff}))
	long := make([]byte, 0, 300)
	for len(long) < 300 {
		long = append(long, "é"...)
	}
	e := excerpt(long[1:]) // starts mid-character, and 200 falls mid-character too
	require.LessOrEqual(t, len(e), 200)
	require.NotContains(t, e[1:], "?")
}
