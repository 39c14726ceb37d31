package host

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// tokenFile is where a generated admin token is kept, inside the data directory.
const tokenFile = "admin-token"

// AdminToken returns the bearer token of the HTTP API: Config.AdminToken when set, else the one
// stored in the data directory, else a new random one it stores there (mode 0600). generated
// is true only on the start that created it, so `serve` prints it once.
func (h *Host) AdminToken() (token string, generated bool, err error) {
	if h.cfg.AdminToken != "" {
		return h.cfg.AdminToken, false, nil
	}
	path := filepath.Join(h.cfg.DataDir, tokenFile)
	b, err := os.ReadFile(path)
	if err == nil && strings.TrimSpace(string(b)) != "" {
		return strings.TrimSpace(string(b)), false, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", false, fmt.Errorf("host: read admin token %s: %w", path, err)
	}
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return "", false, fmt.Errorf("host: generate admin token: %w", err)
	}
	token = hex.EncodeToString(raw)
	if err := os.MkdirAll(h.cfg.DataDir, 0o700); err != nil {
		return "", false, fmt.Errorf("host: create data directory %s: %w", h.cfg.DataDir, err)
	}
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		return "", false, fmt.Errorf("host: store admin token in %s: %w (or set TRELLIS_ADMIN_TOKEN)", path, err)
	}
	return token, true, nil
}
