package uitest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// scenarios run in this order, one browser each; problems edits the app and restores it, so it
// runs last.
var scenarios = []string{"login", "elements", "events", "callback", "tasks", "analytics", "save", "create", "form", "handlers", "broken", "listeners", "deadletters", "operations", "problems"}

// prerequisites says what is missing to run the browser tests, or "".
func prerequisites(uiDir string) string {
	var missing []string
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		missing = append(missing, chromium+" (apt-get install -y chromium, or set CHROMIUM)")
	}
	if _, err := exec.LookPath("node"); err != nil {
		missing = append(missing, "node")
	}
	if _, err := os.Stat(filepath.Join(uiDir, "node_modules", "playwright-core", "package.json")); err != nil {
		missing = append(missing, "web/ui/node_modules (make ui, or cd web/ui && npm ci)")
	}
	return strings.Join(missing, ", ")
}

func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser tests are not short")
	}
	webDir, repo := repoRoot()
	uiDir := filepath.Join(webDir, "ui")
	if miss := prerequisites(uiDir); miss != "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("browser tests need %s (CI is set, so this fails instead of skipping)", miss)
		}
		t.Skipf("browser tests skipped: missing %s", miss)
	}
	shots := os.Getenv("TRELLIS_UI_SCREENSHOTS")
	if shots == "" {
		shots = filepath.Join(webDir, "uitest", "screenshots")
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}

	base, token, app := startHost(t, repo)

	for _, name := range scenarios {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, "node", filepath.Join(uiDir, "tests", name+".mjs"), base, token, shots)
			cmd.Dir = uiDir
			cmd.Env = append(os.Environ(), "TRELLIS_UI_APP_DIR="+app)
			out, err := cmd.CombinedOutput()
			for _, l := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
				t.Log(l)
			}
			if err != nil {
				t.Fatalf("scenario %s failed after %s: %v", name, time.Since(start).Round(time.Millisecond), err)
			}
		})
	}
}

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// startHost builds the trellis binary (once per test binary), writes the sample app into a
// temporary directory and serves it with a random admin token: base URL, token, app directory.
func startHost(t *testing.T, repo string) (base, token, app string) {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "trellis-uitest-bin")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "trellis")
		t0 := time.Now()
		build := exec.Command("go", "build", "-o", builtBin, "./cmd/trellis")
		build.Dir = repo
		if out, err := build.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/trellis: %v\n%s", err, out)
			return
		}
		t.Logf("built trellis in %s", time.Since(t0).Round(time.Millisecond))
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	app = filepath.Join(t.TempDir(), "demo")
	if out, err := exec.Command(builtBin, "init", app).CombinedOutput(); err != nil {
		t.Fatalf("trellis init: %v\n%s", err, out)
	}
	token = randomToken(t)
	return serve(t, builtBin, app, token), token, app
}

func TestMain(m *testing.M) {
	code := m.Run()
	if builtBin != "" {
		os.RemoveAll(filepath.Dir(builtBin))
	}
	os.Exit(code)
}

func repoRoot() (web, repo string) {
	_, self, _, _ := runtime.Caller(0)
	web = filepath.Dir(filepath.Dir(self))
	return web, filepath.Dir(web)
}

func randomToken(t *testing.T) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "uitest-" + hex.EncodeToString(b)
}

// serve starts `trellis serve` of app on a free port and returns its base URL once
// /api/health answers.
func serve(t *testing.T, bin, app, token string) string {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--app", app, "--addr", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "TRELLIS_WORKERS=1", "TRELLIS_ADMIN_TOKEN="+token)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	found := make(chan string, 1)
	go func() {
		lines := bufio.NewScanner(stdout)
		sent := false
		for lines.Scan() {
			l := lines.Text()
			if i := strings.Index(l, "http://"); i >= 0 && !sent {
				found <- strings.TrimRight(strings.Fields(l[i:])[0], "/")
				sent = true
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	var base string
	select {
	case base = <-found:
	case <-time.After(60 * time.Second):
		t.Fatalf("trellis serve printed no address in 60s; stderr:\n%s", stderr.String())
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/api/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return base
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/api/health did not answer 200: %v; stderr:\n%s", base, err, stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
