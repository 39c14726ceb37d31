package host

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

// recorder notes the order parts start and stop in.
type partLog struct{ events []string }

func (l *partLog) part(name string, failStart, failStop bool) part {
	return part{name: name,
		start: func(context.Context) error {
			l.events = append(l.events, "start "+name)
			if failStart {
				return errors.New(name + " refused")
			}
			return nil
		},
		stop: func(context.Context) error {
			l.events = append(l.events, "stop "+name)
			if failStop {
				return errors.New(name + " stuck")
			}
			return nil
		}}
}

func TestPartsStartInOrderAndStopInReverse(t *testing.T) {
	t.Parallel()
	var l partLog
	ctx := context.Background()
	started, err := startParts(ctx, []part{l.part("a", false, false), l.part("b", false, false), l.part("c", false, false)})
	require.NoError(t, err)
	require.NoError(t, stopParts(ctx, started))
	require.Equal(t, []string{"start a", "start b", "start c", "stop c", "stop b", "stop a"}, l.events)
}

// A part that fails to start stops those before it, in reverse, and the error names it; a part
// that fails to stop does not keep the others running.
func TestPartFailingToStartStopsThoseBefore(t *testing.T) {
	t.Parallel()
	var l partLog
	ctx := context.Background()
	_, err := startParts(ctx, []part{l.part("a", false, false), l.part("b", false, true), l.part("c", true, false), l.part("d", false, false)})
	require.ErrorContains(t, err, "host: start c: c refused")
	require.ErrorContains(t, err, "host: stop b: b stuck", "the cleanup's failure is reported too")
	require.Equal(t, []string{"start a", "start b", "start c", "stop b", "stop a"}, l.events, "d never starts; c is not stopped")
}
