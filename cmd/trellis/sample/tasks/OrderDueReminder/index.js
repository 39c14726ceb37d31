exports.remind = function (argDict, ctx) {
  console.log("order due soon", argDict.rowId);
};
