// @azure/functions prints a notice when it is loaded outside the Functions host; tests build
// requests and contexts directly, so that notice is noise.
const warn = console.warn.bind(console);
console.warn = (...args: unknown[]) => {
  if (typeof args[0] === "string" && args[0].includes("Azure Functions runtime")) return;
  warn(...args);
};
