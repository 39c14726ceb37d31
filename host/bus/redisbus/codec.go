package redisbus

import (
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/trellis-run/trellis/host/bus"
)

// A message is one stream entry: field "p" holds the payload, field "h:"+name each header, so
// redis-cli shows what is on a topic.
const (
	fieldPayload = "p"
	headerPrefix = "h:"
)

func encode(m *bus.Message) []any {
	values := make([]any, 0, 2+2*len(m.Headers))
	values = append(values, fieldPayload, m.Payload)
	for k, v := range m.Headers {
		values = append(values, headerPrefix+k, v)
	}
	return values
}

func decode(x redis.XMessage) *bus.Message {
	m := &bus.Message{ID: x.ID, Payload: []byte{}}
	for k, v := range x.Values {
		s, _ := v.(string)
		switch {
		case k == fieldPayload:
			m.Payload = []byte(s)
		case strings.HasPrefix(k, headerPrefix):
			if m.Headers == nil {
				m.Headers = make(map[string]string, len(x.Values)-1)
			}
			m.Headers[k[len(headerPrefix):]] = s
		}
	}
	return m
}

// after returns the stream id right after id ("5-3" → "5-4"), for trimming below the first
// entry a group has not had yet.
func after(id string) string {
	ms, seq, ok := strings.Cut(id, "-")
	if !ok {
		return id
	}
	n, err := strconv.ParseUint(seq, 10, 64)
	if err != nil {
		return id
	}
	if n == ^uint64(0) {
		m, err := strconv.ParseUint(ms, 10, 64)
		if err != nil {
			return id
		}
		return strconv.FormatUint(m+1, 10) + "-0"
	}
	return ms + "-" + strconv.FormatUint(n+1, 10)
}

// lessID compares two stream ids.
func lessID(a, b string) bool {
	am, as := splitID(a)
	bm, bs := splitID(b)
	if am != bm {
		return am < bm
	}
	return as < bs
}

func splitID(id string) (ms, seq uint64) {
	a, b, _ := strings.Cut(id, "-")
	ms, _ = strconv.ParseUint(a, 10, 64)
	seq, _ = strconv.ParseUint(b, 10, 64)
	return ms, seq
}
