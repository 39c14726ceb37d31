// handle runs for every event services.GreetingSvc sends (its hello function sends one).
exports.handle = function (event, ctx) {
  console.log("greeting event", JSON.stringify(event.kwargs));
};
