// Package webhook delivers one event to a webhook subscriber over HTTP: an event element whose
// e.json has "webhook": {"url", "secret", "mode"} instead of a JS handler.
//
// It owns the HTTP request (POST, JSON, signed with HMAC-SHA256 in the Trellis-Signature
// header), the answer (2xx is success, everything else an error the engine can classify), and
// the private-address rule: the URL comes from an element author, and a host that POSTs
// wherever it is told can be made to call its own admin API, a database's HTTP port or the
// cloud metadata service. So unless the app opts in, every address is checked where it is
// dialed (after DNS, on every connection, redirects never followed), not only where it is
// written.
//
// It does not retry, queue, or know about nodes, modes and callbacks: the event engine calls
// Deliver once per attempt and decides what an error means.
package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Headers the event engine sets on a delivery, named here so the engine, the docs and
// receivers agree. Deliver itself sets only HeaderSignature (and Content-Type, User-Agent).
const (
	// HeaderEventID is the event's id, stable across attempts: the receiver's idempotency key,
	// since delivery is at least once.
	HeaderEventID = "Trellis-Event-Id"
	// HeaderNodeID is the node this delivery is; an async receiver needs it for its callback.
	HeaderNodeID = "Trellis-Node-Id"
	// HeaderAttempt is the attempt number, starting at 1.
	HeaderAttempt = "Trellis-Attempt"
)

// Defaults of Options.
const (
	DefaultTimeout          = 30 * time.Second
	DefaultMaxResponseBytes = 64 << 10
	DefaultUserAgent        = "Trellis-Webhook/1"
)

// Options configure a Client. The zero value is the safe one: public addresses only.
type Options struct {
	// AllowPrivate lets requests reach loopback, private (RFC 1918, fc00::/7), link-local
	// (169.254/16, fe80::/10, incl. cloud metadata 169.254.169.254), unspecified and other
	// non-public addresses. Off by default: the app must opt in (app.json).
	AllowPrivate bool
	// Timeout bounds one request, from dialing to the last byte of the answer read; default
	// 30s. A subscriber that hangs must not hold a worker for ever.
	Timeout time.Duration
	// MaxResponseBytes is how much of the answer is read, default 64 KiB; the rest is dropped
	// unread, so a subscriber cannot fill the host's memory.
	MaxResponseBytes int64
	// UserAgent lets receivers and their firewalls recognise Trellis; default
	// "Trellis-Webhook/1".
	UserAgent string
}

// WithDefaults fills in the zero (or negative) fields.
func (o Options) WithDefaults() Options {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxResponseBytes <= 0 {
		o.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if o.UserAgent == "" {
		o.UserAgent = DefaultUserAgent
	}
	return o
}

// Client delivers webhooks. It keeps its own connection pool, so make one per host (or per
// app, when apps differ in AllowPrivate) and share it; it is safe for concurrent use.
type Client struct {
	opts Options
	http *http.Client
	// resolve looks a host name up; a field so tests can play DNS tricks without a DNS server.
	resolve func(ctx context.Context, host string) ([]netip.Addr, error)
	dialer  *net.Dialer
	now     func() time.Time
}

// New returns a Client with its own transport: no proxy from the environment (a proxy would
// dial for us, out of reach of the address check, and HTTP_PROXY is not the app's to choose),
// no redirects, and a dialer that checks every address it connects to.
func New(opts Options) *Client {
	c := &Client{
		opts: opts.WithDefaults(),
		resolve: func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		},
		now: time.Now,
	}
	c.dialer = &net.Dialer{KeepAlive: 30 * time.Second, Control: c.control}
	transport := &http.Transport{
		Proxy:                 nil,
		DialContext:           c.dialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	c.http = &http.Client{
		Transport: transport,
		// A 3xx is the subscriber's answer, not an instruction: following it would let a public
		// URL send the host to a private one after every check had passed.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c
}

// CloseIdleConnections closes the kept-alive connections, for a host that stops.
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }

// Request is one delivery attempt.
type Request struct {
	// URL is the subscriber, from the element's e.json.
	URL string
	// Secret signs the body; empty sends no Trellis-Signature header.
	Secret string
	// Body is the event JSON, sent byte for byte as given: the signature covers these bytes.
	Body []byte
	// Headers are extra headers (event id, node id, attempt: see HeaderEventID...). They cannot
	// replace Content-Type, User-Agent or Trellis-Signature.
	Headers map[string]string
	// Timeout overrides Options.Timeout when > 0 (the element's own "timeout").
	Timeout time.Duration
}

// Response is the subscriber's answer. Deliver returns it with a StatusError too, so the engine
// can log what a failing subscriber said.
type Response struct {
	// Status is the HTTP status code, 0 when no answer came.
	Status int
	// Body is the start of the answer, at most Options.MaxResponseBytes.
	Body []byte
	// Duration is from sending the request to the end of reading the answer.
	Duration time.Duration
}

// Deliver POSTs req.Body to req.URL and reads the answer. A 2xx answer returns a nil error; any
// other outcome an error wrapping one of ErrInvalidURL, ErrInvalidHeader, ErrForbiddenAddress,
// ErrStatus (a *StatusError), ErrTimeout or ErrNetwork. When ctx itself is canceled the error
// wraps ctx's cause (context.Canceled) instead, so the engine can tell a host that stops from a
// subscriber that failed. Errors name the URL's scheme and host only: paths and queries of
// webhook URLs often carry credentials, and errors end up in logs.
func (c *Client) Deliver(ctx context.Context, req Request) (Response, error) {
	u, err := parseURL(req.URL)
	if err != nil {
		return Response{}, err
	}
	if err := checkHeaders(req.Headers); err != nil {
		return Response{}, err
	}
	target := u.Scheme + "://" + u.Host
	if !c.opts.AllowPrivate {
		// Refuse literal addresses before any I/O, with the clearest message. The dialer checks
		// again, and is what makes names safe.
		if err := c.checkHost(u.Hostname()); err != nil {
			return Response{}, err
		}
	}

	timeout := c.opts.Timeout
	if req.Timeout > 0 {
		timeout = req.Timeout
	}
	errTimedOut := fmt.Errorf("%w: %s gave no complete answer within %s", ErrTimeout, target, timeout)
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, errTimedOut)
	defer cancel()

	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(req.Body))
	if err != nil {
		return Response{}, fmt.Errorf("%w: %s: %v", ErrInvalidURL, target, err)
	}
	for k, v := range req.Headers {
		hreq.Header.Set(k, v)
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("User-Agent", c.opts.UserAgent)
	if req.Secret != "" {
		hreq.Header.Set(HeaderSignature, Sign(req.Secret, c.now(), req.Body))
	}

	start := time.Now()
	resp, err := c.http.Do(hreq)
	if err != nil {
		return Response{Duration: time.Since(start)}, c.failure(ctx, target, err)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.opts.MaxResponseBytes))
	// Closing without draining drops the connection when the answer was longer than the limit;
	// reading on just to reuse it would let the subscriber decide how much we read.
	resp.Body.Close()
	out := Response{Status: resp.StatusCode, Body: body, Duration: time.Since(start)}
	if err != nil {
		// A 2xx whose body broke off still counts as a failure: delivery is at least once and
		// receivers deduplicate by event id, so a retry is harmless and a lost event is not.
		return out, c.failure(ctx, target, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return out, &StatusError{Target: target, Status: resp.StatusCode, Excerpt: excerpt(body)}
	}
	return out, nil
}

// failure turns an error of the HTTP client into one wrapping the package's sentinels.
func (c *Client) failure(ctx context.Context, target string, err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		// Its message repeats the full URL, path and query included.
		err = uerr.Err
	}
	if errors.Is(err, ErrForbiddenAddress) {
		return err
	}
	if ctx.Err() != nil {
		cause := context.Cause(ctx)
		switch {
		case errors.Is(cause, ErrTimeout):
			return cause
		case errors.Is(cause, context.DeadlineExceeded):
			// The caller's own deadline: still a timeout of this delivery.
			return fmt.Errorf("%w: %s: %w", ErrTimeout, target, cause)
		default:
			return fmt.Errorf("webhook: delivery to %s abandoned: %w", target, cause)
		}
	}
	var nerr net.Error
	if errors.As(err, &nerr) && nerr.Timeout() {
		return fmt.Errorf("%w: %s: %w", ErrTimeout, target, err)
	}
	return fmt.Errorf("%w: POST %s: %w", ErrNetwork, target, err)
}

// parseURL accepts what a subscriber URL may be: absolute, http or https, with a host and no
// user:password (credentials belong in the secret, and userinfo is a classic way to disguise
// the real host: https://trusted.example@evil.example/).
func parseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse's message quotes the URL; name only the problem.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return nil, fmt.Errorf("%w: %v", ErrInvalidURL, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("%w: scheme %q: want an absolute http:// or https:// URL", ErrInvalidURL, u.Scheme)
	case u.Opaque != "" || u.Hostname() == "":
		return nil, fmt.Errorf("%w: no host: want %s://host/path", ErrInvalidURL, u.Scheme)
	case u.User != nil:
		return nil, fmt.Errorf("%w: %s://%s has user:password; put credentials in the webhook secret", ErrInvalidURL, u.Scheme, u.Host)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("%w: port %q out of range", ErrInvalidURL, p)
		}
	}
	u.Fragment, u.RawFragment = "", ""
	return u, nil
}

// checkHeaders refuses names that are not HTTP tokens and values with control characters, which
// could smuggle another header or end the header block.
func checkHeaders(h map[string]string) error {
	for k, v := range h {
		if k == "" || strings.IndexFunc(k, func(r rune) bool { return !isTokenChar(r) }) >= 0 {
			return fmt.Errorf("%w: name %q is not an HTTP token", ErrInvalidHeader, k)
		}
		if strings.IndexFunc(v, func(r rune) bool { return (r < 0x20 && r != '\t') || r == 0x7f }) >= 0 {
			return fmt.Errorf("%w: value of %s holds a control character", ErrInvalidHeader, k)
		}
	}
	return nil
}

func isTokenChar(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return true
	}
	return strings.ContainsRune("!#$%&'*+-.^_`|~", r)
}

// checkHost refuses, without DNS, a host that is a non-public address literal or a localhost
// name.
func (c *Client) checkHost(host string) error {
	if isLocalhost(host) {
		return fmt.Errorf("%w: %s is a loopback name; %s", ErrForbiddenAddress, host, allowHint)
	}
	if ip, ok := literalIP(host); ok {
		if kind := classify(ip); kind != "" {
			return forbidden(host, ip, kind)
		}
	}
	return nil
}

// dialContext resolves host itself, checks every address, and dials only checked ones, by IP:
// resolving again inside the dial would let a DNS server answer a public address to the check
// and a private one to the connect (DNS rebinding). Among several addresses, refused ones are
// skipped rather than failing the whole name, the way a browser would not reach them either.
func (c *Client) dialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if !c.opts.AllowPrivate {
		if err := c.checkHost(host); err != nil {
			return nil, err
		}
	}
	var ips []netip.Addr
	if ip, ok := literalIP(host); ok {
		ips = []netip.Addr{ip}
	} else if ips, err = c.resolve(ctx, host); err != nil {
		return nil, err
	}
	var refused error
	var dialErr error
	for _, ip := range ips {
		if !c.opts.AllowPrivate {
			if kind := classify(ip); kind != "" {
				if refused == nil {
					refused = forbidden(host, ip, kind)
				}
				continue
			}
		}
		conn, err := c.dialer.DialContext(ctx, network, net.JoinHostPort(ip.Unmap().String(), port))
		if err == nil {
			return conn, nil
		}
		if dialErr == nil {
			dialErr = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	switch {
	case dialErr != nil:
		return nil, dialErr
	case refused != nil:
		return nil, refused
	}
	return nil, &net.DNSError{Err: "no addresses", Name: host, IsNotFound: true}
}

// control runs on the socket about to connect: the last word on where the request goes,
// whatever path led to this dial (the resolver, a literal, a future change to dialContext).
func (c *Client) control(_, address string, _ syscall.RawConn) error {
	if c.opts.AllowPrivate {
		return nil
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: cannot check address %q", ErrForbiddenAddress, address)
	}
	if kind := classify(ap.Addr()); kind != "" {
		return forbidden("", ap.Addr(), kind)
	}
	return nil
}
