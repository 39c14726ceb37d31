exports.handle = function (event, ctx) {
  console.log("new order", JSON.stringify(event.kwargs.postData));
};
