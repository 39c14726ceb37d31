const text = require("commons/text");

// hello({name}) greets someone with the app's GREETING variable.
exports.hello = function (args) {
  const name = (args && args.name) || "world";
  console.log("greeting", name);
  return {message: text.greet(app.env("GREETING") || "Hello", name)};
};

// templates() asks the built-in TaskSvc for the app's task templates.
exports.templates = function () {
  return app.getElement("services.TaskSvc").getTaskTmplList("");
};
