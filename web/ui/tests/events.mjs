// Send an event from the console, find it in the log and open its call tree; a service call's
// request shows its event as a child node with its console output; resend a node.
import { api, baseURL, check, eventually, login, run, token } from "./lib.mjs";

await run("events", async ({ page, shot }) => {
  // A request with a tree: the service call (root), the event it sends (child) and, below the
  // event, the sample's signal receiver hearing its node_finish.
  const called = await api("POST", "/api/services/services.GreetingSvc/hello", { name: "Grace" });
  const reqId = called.result.requestId;
  let eventNodeId = "";
  await eventually(async () => {
    const rows = await api("GET", `/api/events/requests/${reqId}`);
    const kinds = rows.map((r) => r.kind).sort().join(",");
    eventNodeId = rows.find((r) => r.kind === "event")?.nodeId ?? "";
    return kinds === "event,service,signal" && rows.every((r) => r.status === "success");
  }, "the greeting event and its signal receiver to run");

  await login(page);
  await page.locator("[data-nav=events]").click();

  // Send an event through the form.
  await page.getByText("Send an event").click();
  await page.locator("input[name=sender]").fill("services.GreetingSvc");
  await page.locator("textarea[name=kwargs]").fill('{"name": "Console", "message": "from the browser"}');
  await page.getByRole("button", { name: "Send event" }).click();
  const sentLink = page.locator(".send-result a[data-request]");
  await sentLink.waitFor();
  check((await page.locator(".send-result").innerText()).includes("events.GreetingSent"), "the listener is named");
  const sentReq = await sentLink.getAttribute("data-request");
  await shot("sent");

  // Find it in the log: filter by the listener, then open its request.
  await eventually(async () => {
    const page1 = await api("GET", `/api/events/logs?fullName=events.GreetingSent&status=success`);
    return page1.rowDatas.some((r) => r.requestId === sentReq);
  }, "the sent event to finish");
  await page.locator("input[name=fullName]").fill("events.GreetingSent");
  await page.locator("select[name=status]").selectOption("success");
  await page.getByRole("button", { name: "Search" }).click();
  const row = page.locator(`table.log a[data-request="${sentReq}"]`);
  await row.waitFor();
  await shot("log");

  // Free filters: text found in the kwargs in any case; with an error code besides, nothing.
  await page.locator("input[name=fullName]").fill("");
  await page.locator("select[name=status]").selectOption("");
  await page.locator("input[name=text]").fill("FROM THE BROWSER");
  await page.getByRole("button", { name: "Search" }).click();
  await page.locator("table.log tbody tr").first().waitFor();
  await eventually(async () => {
    const reqs = await page.locator("table.log tbody tr a[data-request]").evaluateAll((as) => as.map((a) => a.getAttribute("data-request")));
    return reqs.length > 0 && reqs.every((r) => r === sentReq);
  }, "only the sent event's nodes carry that text");
  await shot("log-text-filter");
  await page.locator("input[name=errorCode]").fill("timeout");
  await page.getByRole("button", { name: "Search" }).click();
  await page.getByText("No log rows match.").waitFor();
  await page.locator("input[name=errorCode]").fill("");
  await page.locator("input[name=text]").fill("");
  await page.locator("input[name=fullName]").fill("events.GreetingSent");
  await page.getByRole("button", { name: "Search" }).click();
  await row.click();
  await page.locator("[data-testid=request-id]", { hasText: sentReq }).waitFor();
  await page.locator("li.node").first().waitFor();

  // A request id typed in the filters opens its call tree.
  await page.goBack();
  await page.locator("input[name=requestId]").fill(sentReq);
  await page.getByRole("button", { name: "Search" }).click();
  await page.locator("[data-testid=request-id]", { hasText: sentReq }).waitFor();
  await page.locator("li.node").first().waitFor();

  // The service call's request: two nodes, the event nested under the service call.
  await page.goto(`${page.url().split("#")[0]}#/events/requests/${reqId}`);
  const root = page.locator(".call-tree > ul > li.node");
  await root.waitFor();
  check((await root.count()) === 1, "one root");
  const child = root.locator(`:scope > ul.tree-nodes > li.node[data-node="${eventNodeId}"]`);
  await child.waitFor();
  // The event node's own part (its children — the signal receiver — are nested beside it).
  const ev = () => page.locator(`.call-tree li.node[data-node="${eventNodeId}"] > details`);
  check((await ev().locator("summary").innerText()).includes("events.GreetingSent"), "the event is the service call's child");
  const signal = child.locator(":scope > ul.tree-nodes > li.node");
  check((await signal.locator("summary").innerText()).includes("signals.AuditTrail"), "the signal receiver is the event's child");
  await ev().locator("summary").click();
  await ev().locator(".console").waitFor();
  check((await ev().locator(".console").innerText()).includes("greeting event"), "console output of the handler");
  await ev().getByRole("button", { name: "Resend" }).click();
  await ev().getByText(/resent as attempt 2/).waitFor();
  await eventually(async () => {
    const rows = await api("GET", `/api/events/requests/${reqId}`);
    return rows.some((r) => r.attempt === 2 && r.status === "success");
  }, "the resent attempt to run");
  await page.getByRole("button", { name: "Refresh" }).click();
  await ev().locator(".meta", { hasText: "attempt 2" }).waitFor();
  // The tree keeps the nodes the user opened across a refresh.
  await ev().locator(".console").waitFor();
  await ev().getByRole("button", { name: "Attempts" }).click();
  await ev().locator(".node-extra table").waitFor();
  await shot("call-tree");

  // Replay: on hosts that have it, the element's current version runs on the node's logged
  // input beside the logged outcome; elsewhere the button is off.
  const replayOn = await fetch(`${baseURL}/api/nodes/probe..x/replay`, { method: "POST", headers: { Authorization: `Bearer ${token}` } })
    .then(async (r) => !(r.status === 404 && /no node operation|no API route/.test(await r.text())));
  const replay = ev().getByRole("button", { name: "Replay", exact: true });
  if (!replayOn) {
    check(await replay.isDisabled(), "replay off until the host has it");
    return;
  }
  await replay.click();
  const side = page.locator("[data-testid=replay]");
  await side.waitFor();
  check((await side.innerText()).includes("greeting event"), "the replay's console output");
  await shot("replay");
});
