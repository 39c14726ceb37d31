exports.run = function (argDict, ctx) {
  console.log("daily report");
  return {ok: true};
};
