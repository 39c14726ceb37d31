package vocab_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/vocab"
)

func TestIsFullName(t *testing.T) {
	for _, ok := range []string{"a", "services.BackupSvc", "events.services.EventSvc", "$x._y-2", "models.app3.Model042", strings.Repeat("a", vocab.MaxFullName)} {
		require.True(t, vocab.IsFullName(ok), "%q", ok)
	}
	for _, bad := range []string{"", ".", "..", "a.", ".a", "a..b", "../etc", "a/b", "a\x00b", "a\nb", "1a", "a.-b", "a.1b", "é", "a b", "%2e%2e", strings.Repeat("a", vocab.MaxFullName+1)} {
		require.False(t, vocab.IsFullName(bad), "%q", bad)
	}
}
