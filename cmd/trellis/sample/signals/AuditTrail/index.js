// Called synchronously for each signal it lists in eventTypes (app.json has "signals":
// {"enabled": true}); keep it quick: the node that emitted the signal waits for it. Each call is
// a row of the execution log under that node (kind "signal"), with what it printed.
exports.receive = function (eventType, data) {
  console.log("signal", eventType, "node", data.node_id, "of request", data.root_pipeline_id);
};
