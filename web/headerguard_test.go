package web

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host"
	"github.com/trellis-run/trellis/host/backends"
)

// startServer starts a host on embedded storage and its server on a loopback port.
func startServer(t *testing.T, opts Options) (*Server, *host.Host) {
	t.Helper()
	h, err := host.New(host.Config{AppDir: writeApp(t, testApp), Sandbox: host.SandboxInProcess, Workers: 1}, backends.Open)
	require.NoError(t, err)
	require.NoError(t, h.Start(context.Background()))
	t.Cleanup(func() { _ = h.Stop(context.Background()) })
	if opts.Token == "" {
		opts.Token = testToken
	}
	srv, err := New(depsOf(h), opts)
	require.NoError(t, err)
	require.NoError(t, srv.Start("127.0.0.1:0"))
	t.Cleanup(func() { _ = srv.Stop(context.Background()) })
	return srv, h
}

// rawConn is one TCP connection to the server, for requests no Go client would send.
type rawConn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	require.NoError(t, c.SetDeadline(time.Now().Add(20*time.Second)))
	return &rawConn{t: t, c: c, r: bufio.NewReader(c)}
}

func (rc *rawConn) send(raw string) {
	rc.t.Helper()
	_, err := io.WriteString(rc.c, raw)
	require.NoError(rc.t, err)
}

// answer reads one response whole: a reset or a bare net/http refusal fails the test here.
func (rc *rawConn) answer() (int, map[string]any) {
	rc.t.Helper()
	res, err := http.ReadResponse(rc.r, nil)
	require.NoError(rc.t, err, "an HTTP answer, not a reset")
	body, err := io.ReadAll(res.Body)
	require.NoError(rc.t, err, "the whole answer, not a reset")
	require.NoError(rc.t, res.Body.Close())
	var m map[string]any
	require.NoError(rc.t, json.Unmarshal(body, &m), "a JSON answer: %q", body)
	return res.StatusCode, m
}

func errorCode(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

// TestControlByteInHeaderAnswers: a NUL (or another control byte) in the token answers 401 in
// the one error body, on a connection that stays usable; in another header 400. net/http used to
// answer a bare 400 and close, and with a body on its way the client saw a reset (issue 12).
func TestControlByteInHeaderAnswers(t *testing.T) {
	t.Parallel()
	srv, _ := startServer(t, Options{})
	addr := srv.Addr()

	for _, bad := range []string{"\x00", "\x01", "\x1b", "\x7f", "\r"} {
		t.Run(fmt.Sprintf("token with %q", bad), func(t *testing.T) {
			rc := dialRaw(t, addr)
			rc.send("GET /api/elements HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + testToken[:4] + bad + testToken[4:] + "\r\n\r\n")
			status, m := rc.answer()
			require.Equal(t, 401, status)
			require.Equal(t, "unauthorized", errorCode(m))
			require.Contains(t, fmt.Sprint(m), "control byte")
			// The connection carries the next request.
			rc.send("GET /api/elements HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + testToken + "\r\n\r\n")
			res, err := http.ReadResponse(rc.r, nil)
			require.NoError(t, err)
			require.Equal(t, 200, res.StatusCode)
			_, _ = io.Copy(io.Discard, res.Body)
		})
	}

	t.Run("a body on its way", func(t *testing.T) {
		rc := dialRaw(t, addr)
		body := `{"sender": "s", "kwargs": {"pad": "` + strings.Repeat("x", 60000) + `"}}`
		go func() {
			_, _ = io.WriteString(rc.c, fmt.Sprintf("POST /api/events/send HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\nAuthorization: Bearer a\x00b\r\n\r\n%s", len(body), body))
		}()
		status, m := rc.answer()
		require.Equal(t, 401, status)
		require.Equal(t, "unauthorized", errorCode(m))
	})

	t.Run("another header", func(t *testing.T) {
		rc := dialRaw(t, addr)
		rc.send("GET /api/elements HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + testToken + "\r\nX-Trace: a\x00b\r\n\r\n")
		status, m := rc.answer()
		require.Equal(t, 400, status)
		require.Equal(t, "invalid_argument", errorCode(m))
		require.Contains(t, fmt.Sprint(m), "X-Trace")
	})

	t.Run("after a chunked body", func(t *testing.T) {
		rc := dialRaw(t, addr)
		rc.send("POST /api/services/services.MathSvc/echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + testToken +
			"\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n[\"a\"\r\n1\r\n]\r\n0\r\n\r\n" +
			"GET /api/elements HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \x00\r\n\r\n")
		status, m := rc.answer()
		require.Equal(t, 200, status, "%v", m)
		require.Equal(t, "a", m["result"])
		status, m = rc.answer()
		require.Equal(t, 401, status)
		require.Equal(t, "unauthorized", errorCode(m))
	})
}

// fakeConn is a net.Conn that reads from r.
type fakeConn struct {
	net.Conn
	r io.Reader
}

func (f fakeConn) Read(p []byte) (int, error) { return f.r.Read(p) }

// TestGuardConnRewritesHeaderLinesOnly: the guard renames header lines with a control byte and
// hands on everything else unchanged — bodies (by Content-Length or chunked), whatever bytes they
// hold, and the whole of a connection after an upgrade — however the bytes arrive and are read.
func TestGuardConnRewritesHeaderLinesOnly(t *testing.T) {
	t.Parallel()
	body := "\r\nAuthorization: \x00\r\n\r\nGET / HTTP/1.1\r\n"
	in := "POST /a HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a\x00b\r\nContent-Length: " + fmt.Sprint(len(body)) + "\r\n\r\n" + body +
		"\r\nPOST /b HTTP/1.1\r\nhost: x\r\ntransfer-encoding: Chunked\r\n\r\n5;ext=1\r\nab\x00\r\n\r\n3\r\n\x01\r\n\r\n0\r\nTrailer: v\r\n\r\n" +
		"GET /c HTTP/1.1\r\nHost: x\r\nCookie: a=\x01\r\nX-Ok: tab\there\r\n\r\n" +
		"GET /d HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n" +
		"X: \x00 after an upgrade, untouched\r\n\r\n"
	want := strings.Replace(in, "Authorization: Bearer a\x00b\r\n", "Trellis-Invalid-Header: Authorization\r\n", 1)
	want = strings.Replace(want, "Cookie: a=\x01\r\n", "Trellis-Invalid-Header: Cookie\r\n", 1)
	readers := map[string]func(io.Reader) io.Reader{
		"whole":    func(r io.Reader) io.Reader { return r },
		"one byte": iotest.OneByteReader,
		"half":     iotest.HalfReader,
	}
	for name, wrap := range readers {
		for _, chunk := range []int{1, 3, 7, 4096} {
			g := &guardConn{Conn: fakeConn{r: wrap(strings.NewReader(in))}, first: true}
			var got []byte
			buf := make([]byte, chunk)
			for {
				n, err := g.Read(buf)
				got = append(got, buf[:n]...)
				if err == io.EOF {
					break
				}
				require.NoError(t, err)
			}
			require.Equal(t, want, string(got), "%s reads of %d", name, chunk)
		}
	}

	// A line that never ends is handed on as it came.
	g := &guardConn{Conn: fakeConn{r: strings.NewReader("GET / HTTP/1.1\r\nX: \x00")}, first: true}
	got, err := io.ReadAll(g)
	require.NoError(t, err)
	require.Equal(t, "GET / HTTP/1.1\r\nX: \x00", string(got))
}
