// Shared helpers: any element may require("commons/text").
exports.greet = function (greeting, name) {
  return greeting + ", " + name + "!";
};
