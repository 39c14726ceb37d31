package vocab_test

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/vocab"
)

func TestDecodeJSONKeepsIntegersExact(t *testing.T) {
	t.Parallel()
	v, err := vocab.DecodeJSON([]byte(`{"id": 9007199254740993, "neg": -9007199254740993, "f": 1.5, "e": 1e3,
		"huge": 123456789012345678901234567890, "list": [1, 2.5, null, true, "s"], "nested": {"n": 7}}`))
	require.NoError(t, err)
	require.Equal(t, map[string]any{
		"id": int64(9007199254740993), "neg": int64(-9007199254740993), "f": 1.5, "e": float64(1000),
		"huge": 1.2345678901234568e29, "list": []any{int64(1), 2.5, nil, true, "s"}, "nested": map[string]any{"n": int64(7)},
	}, v)

	for _, bad := range []string{``, `{`, `{"a": 1} {"b": 2}`, `[1,]`, `nul`, `0A`, `1.5x`, `{"a": 1.5} ]`} {
		_, err := vocab.DecodeJSON([]byte(bad))
		require.Error(t, err, bad)
	}
	m, err := vocab.DecodeJSONObject([]byte(`null`))
	require.NoError(t, err)
	require.Nil(t, m)
	_, err = vocab.DecodeJSONObject([]byte(`[1]`))
	require.ErrorContains(t, err, "not a JSON object: an array")
}

func TestDecodeArgs(t *testing.T) {
	t.Parallel()
	args, err := vocab.DecodeArgs([]byte(`  `))
	require.NoError(t, err)
	require.Nil(t, args)
	args, err = vocab.DecodeArgs([]byte(`{"orderId": 9007199254740993}`))
	require.NoError(t, err)
	require.Equal(t, []any{map[string]any{"orderId": int64(9007199254740993)}}, args, "an object is the one argument")
	args, err = vocab.DecodeArgs([]byte(`[1, "a"]`))
	require.NoError(t, err)
	require.Equal(t, []any{int64(1), "a"}, args, "an array is the positional arguments")
	for body, want := range map[string]string{`42`: "got a number", `"x"`: "got a string", `{`: "not valid JSON"} {
		_, err := vocab.DecodeArgs([]byte(body))
		require.ErrorContains(t, err, want)
		require.Equal(t, vocab.CodeInvalidArgument, vocab.CodeOf(err))
	}
}

func TestCodedErrors(t *testing.T) {
	t.Parallel()
	errGone := vocab.Sentinel(vocab.CodeNotFound, "pkg: gone")
	wrapped := vocab.Errorf(vocab.CodeConflict, "outer: %w", errGone)
	require.ErrorIs(t, wrapped, errGone)
	require.Equal(t, vocab.CodeConflict, vocab.CodeOf(wrapped), "the outermost code wins")
	require.Equal(t, vocab.CodeNotFound, vocab.CodeOf(fmtWrap(errGone)))
	require.Equal(t, "", vocab.CodeOf(errPlain{}))
	require.Equal(t, vocab.CodeUnavailable, vocab.CodeOf(vocab.WithCode(vocab.CodeUnavailable, errPlain{})))
	require.Equal(t, vocab.CodeNotFound, vocab.CodeOf(vocab.WithCode(vocab.CodeUnavailable, errGone)), "a code already there stays")
	require.Nil(t, vocab.WithCode(vocab.CodeInternal, nil))
}

type errPlain struct{}

func (errPlain) Error() string { return "plain" }

func fmtWrap(err error) error { return &wrapErr{err} }

type wrapErr struct{ err error }

func (w *wrapErr) Error() string { return "wrapped: " + w.err.Error() }
func (w *wrapErr) Unwrap() error { return w.err }

func BenchmarkDecodeJSON(b *testing.B) {
	data := []byte(`{"orderId": 12345, "name": "Ada", "paid": true, "items": [1, 2, 3], "nested": {"a": 7}}`)
	for b.Loop() {
		_, _ = vocab.DecodeJSON(data)
	}
}

// A number JSON can spell but no float64 holds (1e99999) is refused with a message naming it,
// rather than decoded as ±Infinity, which no JSON encoder can write back (issue 12, case 7).
func TestDecodeJSONRefusesNumbersOutOfRange(t *testing.T) {
	t.Parallel()
	for _, in := range []string{`1e99999`, `[1, -1e99999]`, `{"a": {"b": 1e400}}`} {
		_, err := vocab.DecodeJSON([]byte(in))
		require.ErrorContains(t, err, "out of range", in)
		_, err = vocab.DecodeArgs([]byte(`[` + in + `]`))
		require.ErrorContains(t, err, "out of range", in)
		require.Equal(t, vocab.CodeInvalidArgument, vocab.CodeOf(err), in)
	}
	// Tiny numbers round to zero, as in JavaScript: they are no error.
	v, err := vocab.DecodeJSON([]byte(`[1e-99999, 1.7976931348623157e308]`))
	require.NoError(t, err)
	require.Equal(t, []any{float64(0), 1.7976931348623157e308}, v)
}

// EncodeJSON writes what JSON.stringify writes: NaN and ±Infinity, which JSON cannot carry, as
// null at any depth, the rest as encoding/json does.
func TestEncodeJSONWritesNonFiniteNumbersAsNull(t *testing.T) {
	t.Parallel()
	b, err := vocab.EncodeJSON(map[string]any{"nan": math.NaN(), "list": []any{math.Inf(1), 1.5, map[string]any{"x": math.Inf(-1)}}, "n": int64(2)})
	require.NoError(t, err)
	require.JSONEq(t, `{"nan": null, "list": [null, 1.5, {"x": null}], "n": 2}`, string(b))
	b, err = vocab.EncodeJSON(math.NaN())
	require.NoError(t, err)
	require.Equal(t, `null`, string(b))
	b, err = vocab.EncodeJSON(map[string]any{"s": "<&>"})
	require.NoError(t, err)
	require.Equal(t, `{"s":"\u003c\u0026\u003e"}`, string(b), "the same bytes as json.Marshal")
	_, err = vocab.EncodeJSON(map[string]any{"c": make(chan int)})
	require.Error(t, err, "what has no JSON form at all is still an error")
}
