package isolate

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/jsvm"
)

type detailed struct {
	code    string
	details any
}

func (d detailed) Error() string     { return "detailed " + d.code }
func (d detailed) ErrorCode() string { return d.code }
func (d detailed) ErrorDetails() any { return d.details }

type plainDetailed struct{ details any }

func (p plainDetailed) Error() string     { return "plain" }
func (p plainDetailed) ErrorDetails() any { return p.details }

// toWireError carries what the VM would throw in-process: the code, the message and the details
// a host error gives with ErrorDetails() any when they are a map[string]any, normalized to the
// value model, through wrapping; a *jsvm.Error's own Details otherwise.
func TestToWireErrorKeepsDetails(t *testing.T) {
	t.Parallel()
	type row struct {
		ID int `json:"id"`
	}
	we := toWireError(fmt.Errorf("wrapped: %w", detailed{"invalid_argument", map[string]any{"field": "userId", "row": row{ID: 2}}}))
	require.True(t, we.Coded)
	require.Equal(t, "invalid_argument", we.Code)
	require.Equal(t, "wrapped: detailed invalid_argument", we.Message)
	require.Equal(t, map[string]any{"field": "userId", "row": map[string]any{"id": int64(2)}}, we.Details)

	we = toWireError(plainDetailed{map[string]any{"disk": "sda"}})
	require.False(t, we.Coded)
	require.Equal(t, "plain", we.Message)
	require.Equal(t, map[string]any{"disk": "sda"}, we.Details)

	we = toWireError(detailed{"conflict", []string{"not a map"}})
	require.Equal(t, "conflict", we.Code)
	require.Nil(t, we.Details)

	we = toWireError(&jsvm.Error{Code: "not_found", Message: "no row", Details: map[string]any{"id": int64(7)}})
	require.Equal(t, jsvm.Error{Code: "not_found", Message: "no row", Details: map[string]any{"id": int64(7)}}, we.Error)

	we = toWireError(errors.New("disk on fire"))
	require.False(t, we.Coded)
	require.Nil(t, we.Details)
}
