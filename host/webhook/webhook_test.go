package webhook_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/webhook"
)

// received is what a test receiver saw of one request.
type received struct {
	method string
	header http.Header
	body   []byte
}

// bundle is one test's receiver and client.
type bundle struct {
	srv    *httptest.Server
	client *webhook.Client
	hits   *atomic.Int64
	got    chan received
}

// setup starts a receiver running handler (nil answers 200 "ok") and a client that may reach
// it: httptest servers listen on loopback, so AllowPrivate is on unless opts say otherwise.
func setup(t *testing.T, opts webhook.Options, handler http.HandlerFunc) *bundle {
	t.Helper()
	b := &bundle{hits: new(atomic.Int64), got: make(chan received, 16)}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		body, _ := io.ReadAll(r.Body)
		b.got <- received{method: r.Method, header: r.Header.Clone(), body: body}
		if handler == nil {
			_, _ = io.WriteString(w, "ok")
			return
		}
		handler(w, r)
	}))
	t.Cleanup(b.srv.Close)
	b.client = webhook.New(opts)
	t.Cleanup(b.client.CloseIdleConnections)
	return b
}

func private() webhook.Options { return webhook.Options{AllowPrivate: true} }

func TestDeliverSignsTheBody(t *testing.T) {
	t.Parallel()
	b := setup(t, private(), nil)
	body := []byte(`{"id":"ev_1","sender":"models.UserModel","kwargs":{"a":1}}`)
	resp, err := b.client.Deliver(context.Background(), webhook.Request{
		URL: b.srv.URL + "/hook?token=abc", Secret: "whsec_test", Body: body,
		Headers: map[string]string{webhook.HeaderEventID: "ev_1", webhook.HeaderNodeID: "nd_1", webhook.HeaderAttempt: "2"},
	})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.Status)
	require.Equal(t, "ok", string(resp.Body))
	require.Positive(t, resp.Duration)

	got := <-b.got
	require.Equal(t, http.MethodPost, got.method)
	require.Equal(t, body, got.body, "the body is sent byte for byte")
	require.Equal(t, "application/json", got.header.Get("Content-Type"))
	require.Equal(t, "Trellis-Webhook/1", got.header.Get("User-Agent"))
	require.Equal(t, "ev_1", got.header.Get("Trellis-Event-Id"))
	require.Equal(t, "nd_1", got.header.Get("Trellis-Node-Id"))
	require.Equal(t, "2", got.header.Get("Trellis-Attempt"))

	sig := got.header.Get("Trellis-Signature")
	require.Regexp(t, `^t=\d+,v1=[0-9a-f]{64}$`, sig)
	require.NoError(t, webhook.Verify("whsec_test", sig, got.body, webhook.DefaultTolerance, time.Now()))

	tampered := append([]byte(nil), got.body...)
	tampered[len(tampered)-2] = '2'
	require.ErrorIs(t, webhook.Verify("whsec_test", sig, tampered, webhook.DefaultTolerance, time.Now()), webhook.ErrBadSignature)
	require.ErrorIs(t, webhook.Verify("other", sig, got.body, webhook.DefaultTolerance, time.Now()), webhook.ErrBadSignature)
}

func TestDeliverWithoutSecretSendsNoSignature(t *testing.T) {
	t.Parallel()
	b := setup(t, webhook.Options{AllowPrivate: true, UserAgent: "custom/2"}, nil)
	_, err := b.client.Deliver(context.Background(), webhook.Request{URL: b.srv.URL, Body: []byte(`{}`)})
	require.NoError(t, err)
	got := <-b.got
	require.Empty(t, got.header.Values("Trellis-Signature"))
	require.Equal(t, "custom/2", got.header.Get("User-Agent"))
}

func TestDeliverExtraHeadersCannotReplaceOurs(t *testing.T) {
	t.Parallel()
	b := setup(t, private(), nil)
	_, err := b.client.Deliver(context.Background(), webhook.Request{
		URL: b.srv.URL, Secret: "s", Body: []byte(`{}`),
		Headers: map[string]string{"Content-Type": "text/plain", "trellis-signature": "t=1,v1=00", "User-Agent": "evil"},
	})
	require.NoError(t, err)
	got := <-b.got
	require.Equal(t, "application/json", got.header.Get("Content-Type"))
	require.Equal(t, "Trellis-Webhook/1", got.header.Get("User-Agent"))
	require.Len(t, got.header.Values("Trellis-Signature"), 1)
	require.NoError(t, webhook.Verify("s", got.header.Get("Trellis-Signature"), got.body, webhook.DefaultTolerance, time.Now()))
}

func TestDeliverStatus(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status int
		body   string
		ok     bool
	}{
		{200, `{"ok":true}`, true},
		{201, "", true},
		{202, "accepted", true},
		{204, "", true},
		{400, `{"error":"bad event"}`, false},
		{404, "not found", false},
		{409, "already seen", false},
		{500, "boom\n\tat line 3", false},
		{503, strings.Repeat("x", 1000), false},
	} {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			t.Parallel()
			b := setup(t, private(), func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.body)
			})
			resp, err := b.client.Deliver(context.Background(), webhook.Request{URL: b.srv.URL + "/secret-path", Body: []byte(`{}`)})
			require.Equal(t, tc.status, resp.Status, "the answer is returned with the error too")
			require.Equal(t, tc.body, string(resp.Body))
			if tc.ok {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, webhook.ErrStatus)
			var serr *webhook.StatusError
			require.ErrorAs(t, err, &serr)
			require.Equal(t, tc.status, serr.Status)
			require.LessOrEqual(t, len(serr.Excerpt), 200)
			require.NotContains(t, serr.Excerpt, "\n")
			require.True(t, strings.HasPrefix(strings.ReplaceAll(tc.body, "\n\t", "  "), serr.Excerpt), "excerpt %q", serr.Excerpt)
			require.NotContains(t, err.Error(), "secret-path", "errors name the host only")
		})
	}
}

func TestDeliverDoesNotFollowRedirects(t *testing.T) {
	t.Parallel()
	target := setup(t, private(), nil)
	b := setup(t, private(), func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.srv.URL, http.StatusTemporaryRedirect)
	})
	resp, err := b.client.Deliver(context.Background(), webhook.Request{URL: b.srv.URL, Body: []byte(`{}`)})
	require.ErrorIs(t, err, webhook.ErrStatus)
	require.Equal(t, http.StatusTemporaryRedirect, resp.Status)
	require.Equal(t, int64(0), target.hits.Load(), "the redirect target was called")
}

// hang is a handler that answers only when the client has gone.
func hang(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }

func TestDeliverTimeout(t *testing.T) {
	t.Parallel()
	t.Run("request", func(t *testing.T) {
		t.Parallel()
		b := setup(t, private(), hang)
		start := time.Now()
		resp, err := b.client.Deliver(context.Background(), webhook.Request{URL: b.srv.URL, Body: []byte(`{}`), Timeout: 100 * time.Millisecond})
		require.ErrorIs(t, err, webhook.ErrTimeout)
		require.NotErrorIs(t, err, webhook.ErrNetwork)
		require.Less(t, time.Since(start), 5*time.Second)
		require.Zero(t, resp.Status)
		require.Contains(t, err.Error(), "100ms")
	})
	t.Run("options", func(t *testing.T) {
		t.Parallel()
		b := setup(t, webhook.Options{AllowPrivate: true, Timeout: 100 * time.Millisecond}, hang)
		_, err := b.client.Deliver(context.Background(), webhook.Request{URL: b.srv.URL, Body: []byte(`{}`)})
		require.ErrorIs(t, err, webhook.ErrTimeout)
	})
	t.Run("slow body", func(t *testing.T) {
		t.Parallel()
		// Headers come at once, the body never ends: the timeout covers reading it too.
		b := setup(t, private(), func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "partial")
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		})
		resp, err := b.client.Deliver(context.Background(), webhook.Request{URL: b.srv.URL, Body: []byte(`{}`), Timeout: 200 * time.Millisecond})
		require.ErrorIs(t, err, webhook.ErrTimeout)
		require.Equal(t, http.StatusOK, resp.Status)
	})
	t.Run("caller deadline", func(t *testing.T) {
		t.Parallel()
		b := setup(t, private(), hang)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := b.client.Deliver(ctx, webhook.Request{URL: b.srv.URL, Body: []byte(`{}`)})
		require.ErrorIs(t, err, webhook.ErrTimeout)
		require.ErrorIs(t, err, context.DeadlineExceeded)
	})
}

func TestDeliverContextCanceled(t *testing.T) {
	t.Parallel()
	arrived := make(chan struct{})
	b := setup(t, private(), func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-r.Context().Done()
	})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-arrived
		cancel()
	}()
	_, err := b.client.Deliver(ctx, webhook.Request{URL: b.srv.URL, Body: []byte(`{}`)})
	require.ErrorIs(t, err, context.Canceled)
	require.NotErrorIs(t, err, webhook.ErrTimeout)
	require.NotErrorIs(t, err, webhook.ErrNetwork)

	// Already canceled: nothing is sent.
	before := b.hits.Load()
	_, err = b.client.Deliver(ctx, webhook.Request{URL: b.srv.URL, Body: []byte(`{}`)})
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, before, b.hits.Load())
}

func TestDeliverTruncatesLargeAnswer(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
	b := setup(t, webhook.Options{AllowPrivate: true, MaxResponseBytes: 1000}, func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, big)
	})
	resp, err := b.client.Deliver(context.Background(), webhook.Request{URL: b.srv.URL, Body: []byte(`{}`)})
	require.NoError(t, err)
	require.Equal(t, big[:1000], string(resp.Body))

	d := setup(t, private(), func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
		_, _ = io.WriteString(w, big)
	})
	resp, err = d.client.Deliver(context.Background(), webhook.Request{URL: d.srv.URL, Body: []byte(`{}`)})
	require.ErrorIs(t, err, webhook.ErrStatus)
	require.Len(t, resp.Body, webhook.DefaultMaxResponseBytes)
}

func TestDeliverRefusesPrivateAddresses(t *testing.T) {
	t.Parallel()
	// A real receiver on loopback: a refusal must come before any byte reaches it.
	b := setup(t, webhook.Options{}, nil)
	_, port, err := net.SplitHostPort(b.srv.Listener.Addr().String())
	require.NoError(t, err)
	for _, host := range []string{
		"127.0.0.1:" + port,
		"localhost:" + port,
		"LOCALHOST.:" + port,
		"[::1]:" + port,
		"[::ffff:127.0.0.1]:" + port,
		"[::ffff:7f00:1]:" + port,
		"0.0.0.0:" + port,
		"[::]:" + port,
		"2130706433:" + port,
		"0x7f000001:" + port,
		"017700000001:" + port,
		"127.1:" + port,
		"0177.0.0.1:" + port,
		"127.0.0.1.:" + port,
		"10.1.2.3",
		"172.16.0.1",
		"192.168.1.1",
		"100.100.100.200",
		"169.254.169.254",
		"[::ffff:169.254.169.254]",
		"[fe80::1%25eth0]",
		"[fc00::1]",
		"[fd00:ec2::254]",
		"[64:ff9b::a00:1]",
		"[2002:7f00:1::]",
	} {
		t.Run(host, func(t *testing.T) {
			t.Parallel()
			resp, err := b.client.Deliver(context.Background(), webhook.Request{URL: "http://" + host + "/latest/meta-data/", Body: []byte(`{}`)})
			require.ErrorIs(t, err, webhook.ErrForbiddenAddress)
			require.NotErrorIs(t, err, webhook.ErrNetwork)
			require.Contains(t, err.Error(), `"webhooks": {"allowPrivateNetwork": true}`)
			require.Zero(t, resp.Status)
		})
	}
	t.Cleanup(func() { require.Zero(t, b.hits.Load(), "a refused request reached the receiver") })
}

func TestDeliverAllowPrivateReachesLocalNames(t *testing.T) {
	t.Parallel()
	b := setup(t, private(), nil)
	_, port, err := net.SplitHostPort(b.srv.Listener.Addr().String())
	require.NoError(t, err)
	for _, host := range []string{"localhost", "2130706433", "0x7f000001", "127.1"} {
		_, err := b.client.Deliver(context.Background(), webhook.Request{URL: "http://" + host + ":" + port + "/", Body: []byte(`{}`)})
		require.NoError(t, err, host)
	}
}

func TestDeliverInvalidURL(t *testing.T) {
	t.Parallel()
	c := webhook.New(webhook.Options{})
	for _, u := range []string{
		"",
		"example.com/hook",
		"/hook",
		"ftp://example.com/hook",
		"file:///etc/passwd",
		"javascript:alert(1)",
		"http:example.com",
		"http:///hook",
		"https://user:pw@example.com/hook",
		"https://trusted.example@evil.example/",
		"http://[::1",
		"http://example.com:99999/",
		"http://exa mple.com/",
		"http://example.com/%zz",
	} {
		_, err := c.Deliver(context.Background(), webhook.Request{URL: u, Body: []byte(`{}`)})
		require.ErrorIs(t, err, webhook.ErrInvalidURL, "%q", u)
	}
}

func TestDeliverInvalidHeader(t *testing.T) {
	t.Parallel()
	b := setup(t, private(), nil)
	for _, h := range []map[string]string{
		{"X-Ok": "a\r\nX-Injected: 1"},
		{"X Bad": "1"},
		{"": "1"},
		{"X-Null": "a\x00b"},
	} {
		_, err := b.client.Deliver(context.Background(), webhook.Request{URL: b.srv.URL, Body: []byte(`{}`), Headers: h})
		require.ErrorIs(t, err, webhook.ErrInvalidHeader, "%q", h)
	}
	require.Zero(t, b.hits.Load())
}

func TestDeliverNetworkError(t *testing.T) {
	t.Parallel()
	// A port nothing listens on any more.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	c := webhook.New(private())
	_, err = c.Deliver(context.Background(), webhook.Request{URL: "http://" + addr + "/hook?key=s3cret", Body: []byte(`{}`)})
	require.ErrorIs(t, err, webhook.ErrNetwork)
	require.NotContains(t, err.Error(), "s3cret")

	// A receiver that hangs up without answering.
	b := setup(t, private(), func(w http.ResponseWriter, _ *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			_ = conn.Close()
		}
	})
	_, err = b.client.Deliver(context.Background(), webhook.Request{URL: b.srv.URL, Body: []byte(`{}`)})
	require.ErrorIs(t, err, webhook.ErrNetwork)
}

func TestDeliverConcurrent(t *testing.T) {
	t.Parallel()
	b := setup(t, private(), func(w http.ResponseWriter, _ *http.Request) {})
	errs := make(chan error, 16)
	for range 16 {
		go func() {
			_, err := b.client.Deliver(context.Background(), webhook.Request{URL: b.srv.URL, Secret: "s", Body: []byte(`{}`)})
			errs <- err
		}()
	}
	for range 16 {
		require.NoError(t, <-errs)
	}
}

func TestSignKnownVector(t *testing.T) {
	t.Parallel()
	// printf '1700000000.{"id":"ev_1"}' | openssl dgst -sha256 -hmac whsec_test
	const want = "t=1700000000,v1=0ef8441954c7c510c78f6c063ddfba5a6f746285701338504e3a77d1811f2fa6"
	require.Equal(t, want, webhook.Sign("whsec_test", time.Unix(1700000000, 0), []byte(`{"id":"ev_1"}`)))
}

func TestVerify(t *testing.T) {
	t.Parallel()
	body := []byte(`{"id":"ev_1"}`)
	signedAt := time.Unix(1700000000, 0)
	good := webhook.Sign("whsec_test", signedAt, body)
	v1 := good[strings.Index(good, "v1="):]
	other := webhook.Sign("old", signedAt, body)
	for _, tc := range []struct {
		name, secret, header string
		tolerance            time.Duration
		now                  time.Time
		want                 error
	}{
		{"valid", "whsec_test", good, webhook.DefaultTolerance, signedAt.Add(time.Minute), nil},
		{"spaces", "whsec_test", "t=1700000000, " + v1, webhook.DefaultTolerance, signedAt, nil},
		{"rotated secret", "whsec_test", other + "," + v1, webhook.DefaultTolerance, signedAt, nil},
		{"unknown scheme ignored", "whsec_test", good + ",v2=zz", webhook.DefaultTolerance, signedAt, nil},
		{"no tolerance", "whsec_test", good, 0, signedAt.Add(24 * time.Hour), nil},
		{"too old", "whsec_test", good, webhook.DefaultTolerance, signedAt.Add(6 * time.Minute), webhook.ErrSignatureExpired},
		{"from the future", "whsec_test", good, webhook.DefaultTolerance, signedAt.Add(-6 * time.Minute), webhook.ErrSignatureExpired},
		{"wrong secret", "nope", good, webhook.DefaultTolerance, signedAt, webhook.ErrBadSignature},
		{"empty secret", "", good, webhook.DefaultTolerance, signedAt, webhook.ErrBadSignature},
		{"changed timestamp", "whsec_test", "t=1700000001," + v1, webhook.DefaultTolerance, signedAt, webhook.ErrBadSignature},
		{"empty", "whsec_test", "", webhook.DefaultTolerance, signedAt, webhook.ErrBadSignature},
		{"no v1", "whsec_test", "t=1700000000", webhook.DefaultTolerance, signedAt, webhook.ErrBadSignature},
		{"no t", "whsec_test", v1, webhook.DefaultTolerance, signedAt, webhook.ErrBadSignature},
		{"bad hex", "whsec_test", "t=1700000000,v1=xyz", webhook.DefaultTolerance, signedAt, webhook.ErrBadSignature},
		{"truncated", "whsec_test", good[:len(good)-2], webhook.DefaultTolerance, signedAt, webhook.ErrBadSignature},
		{"garbage", "whsec_test", "sha256=abc", webhook.DefaultTolerance, signedAt, webhook.ErrBadSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := webhook.Verify(tc.secret, tc.header, body, tc.tolerance, tc.now)
			if tc.want == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tc.want)
			if !errors.Is(tc.want, webhook.ErrSignatureExpired) {
				require.NotErrorIs(t, err, webhook.ErrSignatureExpired)
			}
		})
	}
}

func TestOptionsWithDefaults(t *testing.T) {
	t.Parallel()
	o := webhook.Options{Timeout: -1}.WithDefaults()
	require.Equal(t, 30*time.Second, o.Timeout)
	require.Equal(t, int64(64<<10), o.MaxResponseBytes)
	require.Equal(t, "Trellis-Webhook/1", o.UserAgent)
	require.False(t, o.AllowPrivate)
}
