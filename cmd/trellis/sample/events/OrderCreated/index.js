exports.handle = function (event, ctx) {
  console.log("new order", JSON.stringify(event.kwargs.postData));
  return {seen: event.kwargs.postData && event.kwargs.postData.id};
};

// Hooks (needRunHook in e.json; docs/hooks.md). Each call is a row of the execution log under
// the node (kind "hook"), with what it printed; what a hook returns is not used.

// node_enter runs before every try of handle; a change to data.kwargs is what handle receives.
exports.node_enter = function (data, parentData) {
  console.log("order event", data.nodeId, "try", data.attempt, "from", parentData.sender);
};

// node_finish runs when handle succeeded; a change to data.result is what the log saves.
exports.node_finish = function (data, parentData) {
  data.result = Object.assign({}, data.result, {checkedAt: new Date().toISOString()});
};
