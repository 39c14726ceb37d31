exports.receive = function (eventType, data) {
  console.log("signal", eventType);
};
