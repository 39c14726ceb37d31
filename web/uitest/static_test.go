package uitest

import (
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestStaticServing checks how the host serves the embedded editor (web/routes_ui.go): the page,
// its hashed assets with a long cache, single-page-app routes, and JSON 404s under /api. It needs
// no browser.
func TestStaticServing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and serves the binary")
	}
	_, repo := repoRoot()
	base, token, _ := startHost(t, repo)

	get := func(method, path string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, nil)
		if strings.HasPrefix(path, "/api") {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}

	resp, page := get("GET", "/")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if !strings.Contains(page, "<title>Trellis</title>") {
		t.Errorf("GET / is not the editor:\n%s", page)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("index.html Cache-Control = %q, want no-cache", cc)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("index.html CSP = %q", csp)
	}

	assets := regexp.MustCompile(`(?:src|href)="(/assets/[^"]+)"`).FindAllStringSubmatch(page, -1)
	if len(assets) < 2 {
		t.Fatalf("index.html names %d assets, want the script and the stylesheet:\n%s", len(assets), page)
	}
	for _, m := range assets {
		resp, body := get("GET", m[1])
		want := map[bool]string{true: "text/javascript", false: "text/css"}[strings.HasSuffix(m[1], ".js")]
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), want) || len(body) == 0 {
			t.Errorf("GET %s: %d %q (%d bytes), want 200 %s", m[1], resp.StatusCode, resp.Header.Get("Content-Type"), len(body), want)
		}
		if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "immutable") || !strings.Contains(cc, "max-age=31536000") {
			t.Errorf("GET %s Cache-Control = %q, want a long immutable cache", m[1], cc)
		}
	}

	// Every file of the build (lazily loaded chunks too) is served with its type and cache.
	webDir, _ := repoRoot()
	built, err := filepath.Glob(filepath.Join(webDir, "ui", "dist", "assets", "*"))
	if err != nil || len(built) < 2 {
		t.Fatalf("web/ui/dist/assets: %v %v", built, err)
	}
	for _, f := range built {
		p := "/assets/" + filepath.Base(f)
		resp, _ := get("GET", p)
		ext := filepath.Ext(f)
		want := map[string]string{".js": "text/javascript", ".css": "text/css"}[ext]
		if resp.StatusCode != 200 || (want != "" && !strings.HasPrefix(resp.Header.Get("Content-Type"), want)) {
			t.Errorf("GET %s: %d %q", p, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if !strings.Contains(resp.Header.Get("Cache-Control"), "immutable") {
			t.Errorf("GET %s Cache-Control = %q", p, resp.Header.Get("Cache-Control"))
		}
	}

	// Routes of the single-page app serve the page; HEAD works.
	for _, p := range []string{"/elements/services.GreetingSvc", "/events/requests/req_x"} {
		resp, body := get("GET", p)
		if resp.StatusCode != 200 || !strings.Contains(body, "<title>Trellis</title>") {
			t.Errorf("GET %s: %d, want the page", p, resp.StatusCode)
		}
	}
	if resp, _ := get("HEAD", "/"); resp.StatusCode != 200 {
		t.Errorf("HEAD /: %d", resp.StatusCode)
	}

	// A hashed asset that is gone is a 404, not the page.
	if resp, body := get("GET", "/assets/index-gone.js"); resp.StatusCode != 404 || strings.Contains(body, "<title>") {
		t.Errorf("GET a missing asset: %d %q", resp.StatusCode, body)
	}

	// Unknown API routes answer JSON 404s.
	for _, p := range []string{"/api/nope", "/api"} {
		resp, body := get("GET", p)
		var e struct {
			Error struct{ Code string } `json:"error"`
		}
		if resp.StatusCode != 404 || json.Unmarshal([]byte(body), &e) != nil || e.Error.Code != "not_found" {
			t.Errorf("GET %s: %d %s, want a JSON 404", p, resp.StatusCode, body)
		}
	}
}
