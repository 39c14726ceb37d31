const text = require("commons/text");

// hello({name}) greets someone with the app's GREETING variable and sends an event as this
// service, which events/GreetingSent listens to: the listener runs on a host that serves
// events (trellis serve), so after `trellis call` the event waits for the next serve.
exports.hello = function (args) {
  const name = (args && args.name) || "world";
  const message = text.greet(app.env("GREETING") || "Hello", name);
  console.log("greeting", name);
  const sent = app.getElement("events.services.EventSvc").sendEvent("services.GreetingSvc", {name: name, message: message});
  return {message: message, requestId: sent.requestId};
};

// templates() asks the built-in TaskSvc for the app's task templates.
exports.templates = function () {
  return app.getElement("services.TaskSvc").getTaskTmplList("");
};
