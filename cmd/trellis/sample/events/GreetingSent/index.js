exports.handle = function (event, ctx) {
  console.log("greeting event", JSON.stringify(event.kwargs));
};
