// Package uitest drives the web editor and console (web/ui) in a real headless Chromium against
// a real `trellis serve` of the sample app. It has no code of its own beyond its test: each
// scenario is a script web/ui/tests/<name>.mjs run with Node.js and playwright-core.
//
// The test skips when Chromium (/usr/bin/chromium, or $CHROMIUM), Node.js or web/ui/node_modules
// is missing, unless CI is set (CI=true, as .ci/run sets it): then it fails. It builds nothing
// of the editor: it serves the committed web/ui/dist embedded in the binary it builds, so run
// `make ui` first after changing web/ui/src. Screenshots go to web/uitest/screenshots/
// (gitignored, or $TRELLIS_UI_SCREENSHOTS); each scenario prints their paths.
package uitest
