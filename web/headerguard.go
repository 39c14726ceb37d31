package web

import (
	"bytes"
	"net"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
)

// invalidHeader is the header a request arrives with in place of one whose value held a
// control byte; its value is the name of the header it replaced.
const invalidHeader = "Trellis-Invalid-Header"

// guardListener makes requests whose header values hold a control byte (NUL and the other bytes
// below 0x20 but tab, and DEL) reach the handlers. net/http refuses such a request before any
// handler runs: it answers a bare "400 Bad Request" and closes the connection, and when a body
// is still arriving the client sees the connection reset instead (issue 12: a NUL in the token
// reset the connection). The listener's connections rewrite each such header line to
// "Trellis-Invalid-Header: <name>", which refuseInvalidHeaders answers in the one error body: 401
// for the Authorization header, 400 for any other. Nothing else of the stream changes.
//
// To tell header lines from body bytes it follows HTTP/1.1 framing on its own side of the
// reader: Content-Length and chunked bodies. Anything it does not follow — an upgrade, a
// transfer coding other than chunked, a malformed line — turns it into a plain pipe for the rest
// of the connection, so the worst it can do is leave a request to net/http's own answer.
type guardListener struct{ net.Listener }

func (l guardListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &guardConn{Conn: c, first: true}, nil
}

type guardState int

const (
	inHeader      guardState = iota // reading the request line and header lines
	inBody                          // passing remaining bytes of a Content-Length body
	inChunkSize                     // reading a chunk-size line
	inChunkData                     // passing remaining bytes of a chunk and its CRLF
	inTrailer                       // reading trailer lines after the last chunk
	inPassthrough                   // a plain pipe from here on
)

// maxGuardLine bounds a line the guard holds back while it waits for its end: net/http's header
// limit (1 MiB, DefaultMaxHeaderBytes) and its slack. A longer line passes through unread, and
// net/http answers 431.
const maxGuardLine = 1<<20 + 4096

type guardConn struct {
	net.Conn
	state     guardState
	first     bool   // the next header line is a request line
	line      []byte // a line not yet ended
	out       []byte // bytes ready for the reader
	remaining int64  // of the body or chunk being passed
	readErr   error  // an error met while out still held bytes
	buf       []byte

	// Framing of the request whose header is being read.
	contentLength int64 // -1: none
	chunked       bool
	opaque        bool // framing the guard does not follow
}

// CloseWrite is the TCP connection's: net/http half-closes a connection it refuses a request
// on, so the client reads the answer rather than a reset.
func (c *guardConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *guardConn) Read(p []byte) (int, error) {
	for len(c.out) == 0 {
		if c.readErr != nil {
			err := c.readErr
			c.readErr = nil
			return 0, err
		}
		switch {
		case c.state == inPassthrough && len(c.line) == 0:
			return c.Conn.Read(p)
		case (c.state == inBody || c.state == inChunkData) && len(p) > 0:
			// Body bytes go straight to the reader, in its buffer.
			n, err := c.Conn.Read(p[:min(int64(len(p)), c.remaining)])
			c.remaining -= int64(n)
			if c.remaining == 0 {
				c.endOfData()
			}
			return n, err
		}
		if c.buf == nil {
			c.buf = make([]byte, 4096)
		}
		n, err := c.Conn.Read(c.buf)
		c.feed(c.buf[:n])
		if err != nil {
			if len(c.out) == 0 {
				c.out, c.line = c.line, nil // what never ended, as it came
			}
			if len(c.out) == 0 {
				return 0, err
			}
			c.readErr = err
		}
	}
	n := copy(p, c.out)
	c.out = c.out[n:]
	if len(c.out) == 0 {
		c.out = nil
	}
	return n, nil
}

// feed runs bytes read through the state machine into out.
func (c *guardConn) feed(b []byte) {
	for len(b) > 0 {
		switch c.state {
		case inPassthrough:
			c.out = append(c.out, b...)
			return
		case inBody, inChunkData:
			k := min(int64(len(b)), c.remaining)
			c.out = append(c.out, b[:k]...)
			b = b[k:]
			if c.remaining -= k; c.remaining == 0 {
				c.endOfData()
			}
		default:
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				c.line = append(c.line, b...)
				if len(c.line) > maxGuardLine {
					c.pass()
				}
				return
			}
			c.line = append(c.line, b[:i+1]...)
			b = b[i+1:]
			line := c.line
			c.line = nil
			c.endOfLine(line)
		}
	}
}

// endOfData follows the end of a body or of a chunk's data.
func (c *guardConn) endOfData() {
	if c.state == inChunkData {
		c.state = inChunkSize
		return
	}
	c.state, c.first = inHeader, true
}

// pass makes the connection a plain pipe, handing on what is held.
func (c *guardConn) pass() {
	c.out = append(c.out, c.line...)
	c.line = nil
	c.state = inPassthrough
}

func (c *guardConn) endOfLine(line []byte) {
	blank := len(bytes.TrimRight(line, "\r\n")) == 0
	switch c.state {
	case inChunkSize:
		c.out = append(c.out, line...)
		size, _, _ := strings.Cut(strings.TrimRight(string(line), "\r\n"), ";")
		n, err := strconv.ParseInt(strings.TrimSpace(size), 16, 64)
		switch {
		case err != nil || n < 0:
			c.state = inPassthrough // net/http refuses the body and closes
		case n == 0:
			c.state = inTrailer
		default:
			c.state, c.remaining = inChunkData, n+2 // the data and its CRLF
		}
		return
	case inTrailer:
		c.out = append(c.out, line...)
		if blank {
			c.state, c.first = inHeader, true
		}
		return
	}
	if c.first {
		c.out = append(c.out, line...)
		if blank {
			return // net/http skips blank lines before a request line
		}
		c.first, c.contentLength, c.chunked = false, -1, false
		c.opaque = bytes.HasPrefix(line, []byte("CONNECT "))
		return
	}
	if blank {
		c.out = append(c.out, line...)
		switch {
		case c.opaque:
			c.state = inPassthrough
		case c.chunked:
			c.state = inChunkSize
		case c.contentLength > 0:
			c.state, c.remaining = inBody, c.contentLength
		default:
			c.first = true
		}
		return
	}
	if line[0] == ' ' || line[0] == '\t' {
		c.out = append(c.out, line...)
		c.state = inPassthrough // a folded line: net/http's to judge
		return
	}
	name, value, ok := bytes.Cut(line, []byte(":"))
	if !ok || !validHeaderName(name) {
		c.out = append(c.out, line...)
		c.state = inPassthrough
		return
	}
	if hasControlByte(bytes.TrimRight(value, "\r\n")) {
		c.out = append(append(append(c.out, invalidHeader+": "...), name...), "\r\n"...)
		return
	}
	c.out = append(c.out, line...)
	v := strings.TrimSpace(string(value))
	switch strings.ToLower(string(name)) {
	case "content-length":
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 || (c.contentLength >= 0 && c.contentLength != n) {
			c.opaque = true
		}
		c.contentLength = n
	case "transfer-encoding":
		if !strings.EqualFold(v, "chunked") || c.chunked {
			c.opaque = true
		}
		c.chunked = true
	case "upgrade":
		c.opaque = true
	}
}

// hasControlByte reports a byte net/http refuses in a header value: below 0x20 but tab, or DEL.
func hasControlByte(v []byte) bool {
	for _, b := range v {
		if (b < 0x20 && b != '\t') || b == 0x7f {
			return true
		}
	}
	return false
}

// validHeaderName is a header name net/http takes: one or more token characters.
func validHeaderName(name []byte) bool {
	if len(name) == 0 {
		return false
	}
	for _, b := range name {
		if b <= ' ' || b >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, b) >= 0 {
			return false
		}
	}
	return true
}

// refuseInvalidHeaders answers a request a header of which held a control byte (guardListener
// renamed it): 401 for the token, 400 for any other header.
func refuseInvalidHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		names := c.Request().Header.Values(invalidHeader)
		if len(names) == 0 {
			return next(c)
		}
		for _, n := range names {
			if strings.EqualFold(n, "Authorization") {
				return errUnauthorized("the Authorization header holds a control byte (such as NUL): send the bearer token exactly as it was given")
			}
		}
		return errBadRequest("header %s holds a control byte (such as NUL), which HTTP does not allow in a header", names[0])
	}
}
