// A Lambda execution environment for Node.js handlers, run as a local process by lambda_executor.py.
//
// Same line protocol as lambda_worker.py: {"type":"ready"} after init, then one answer
// {"ok","payload","logs"} per request read from stdin. Everything the handler writes to stdout or
// stderr (console.* included) is captured for the invocation's log instead of reaching the protocol.
"use strict";

const readline = require("readline");
const util = require("util");
const path = require("path");
const fs = require("fs");
const { pathToFileURL } = require("url");

const protoWrite = process.stdout.write.bind(process.stdout);
const hostErr = process.stderr.write.bind(process.stderr);
let captured = null;
let requestId = "";

function sink(chunk, encoding, cb) {
  const text = typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8");
  if (captured) captured.push(text);
  else hostErr(text);
  const done = typeof encoding === "function" ? encoding : cb;
  if (typeof done === "function") done();
  return true;
}
process.stdout.write = sink;
process.stderr.write = sink;

// The AWS Node.js runtime prefixes console output with time, request id and level.
for (const [method, level] of [["log", "INFO"], ["info", "INFO"], ["warn", "WARN"], ["error", "ERROR"], ["debug", "DEBUG"], ["trace", "TRACE"]]) {
  console[method] = (...args) => {
    sink(`${new Date().toISOString()}\t${requestId || "undefined"}\t${level}\t${util.format(...args)}\n`);
  };
}

function errorBody(err) {
  if (err instanceof Error) {
    return { errorType: err.name || "Error", errorMessage: err.message, trace: String(err.stack || "").split("\n") };
  }
  return { errorType: typeof err, errorMessage: String(err), trace: [] };
}

function runtimeError(type, message) {
  return { errorType: type, errorMessage: message, trace: [] };
}

async function loadHandler() {
  const spec = process.env._HANDLER || "";
  const root = process.env.LAMBDA_TASK_ROOT || process.cwd();
  const slash = spec.lastIndexOf("/");
  const dot = spec.indexOf(".", slash + 1);
  if (dot < 0) {
    return [null, runtimeError("Runtime.MalformedHandlerName", `Bad handler ${spec}`)];
  }
  const modulePath = path.resolve(root, spec.slice(0, dot));
  const member = spec.slice(dot + 1);
  let mod;
  try {
    const file = [".js", ".mjs", ".cjs"].map((ext) => modulePath + ext).find((f) => fs.existsSync(f));
    if (!file) {
      throw Object.assign(new Error(`Cannot find module '${spec.slice(0, dot)}'`), { code: "MODULE_NOT_FOUND" });
    }
    if (file.endsWith(".mjs")) {
      mod = await import(pathToFileURL(file).href);
    } else {
      try {
        mod = require(file);
      } catch (e) {
        // .js files of an ES module package ("type": "module") must be imported.
        if (e && e.code === "ERR_REQUIRE_ESM") mod = await import(pathToFileURL(file).href);
        else throw e;
      }
    }
  } catch (e) {
    if (e && e.code === "MODULE_NOT_FOUND") {
      return [null, runtimeError("Runtime.ImportModuleError", `Error: ${e.message}`)];
    }
    return [null, e instanceof SyntaxError ? runtimeError("Runtime.UserCodeSyntaxError", `${e.name}: ${e.message}`) : errorBody(e)];
  }
  let handler = mod;
  for (const key of member.split(".")) handler = handler == null ? undefined : handler[key];
  if (typeof handler !== "function") {
    return [null, runtimeError("Runtime.HandlerNotFound", `${spec.slice(slash + 1)} is undefined or not exported`)];
  }
  return [handler, null];
}

function callHandler(handler, event, context) {
  return new Promise((resolve, reject) => {
    let settled = false;
    const callback = (err, result) => {
      if (settled) return;
      settled = true;
      if (err !== undefined && err !== null) reject(err);
      else resolve(result);
    };
    try {
      const r = handler(event, context, callback);
      if (r && typeof r.then === "function") {
        r.then((v) => callback(null, v), (e) => callback(e === undefined || e === null ? new Error("Promise rejected") : e));
      } else if (handler.length < 3) {
        callback(null, r);
      }
    } catch (e) {
      callback(e);
    }
  });
}

function makeContext(request) {
  const env = process.env;
  return {
    awsRequestId: request.request_id,
    invokedFunctionArn: request.invoked_function_arn,
    functionName: env.AWS_LAMBDA_FUNCTION_NAME,
    functionVersion: env.AWS_LAMBDA_FUNCTION_VERSION,
    memoryLimitInMB: env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    logGroupName: env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: env.AWS_LAMBDA_LOG_STREAM_NAME,
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => Math.max(0, Math.floor(request.deadline_ms - Date.now())),
  };
}

async function invoke(handler, initError, request) {
  if (initError) {
    console.error(`${initError.errorType}: ${initError.errorMessage}`);
    return [false, JSON.stringify(initError)];
  }
  let event;
  try {
    event = JSON.parse(request.payload || "{}");
  } catch (e) {
    return [false, JSON.stringify(runtimeError("Runtime.UnmarshalError", `Unable to parse input as JSON: ${e.message}`))];
  }
  try {
    const result = await callHandler(handler, event, makeContext(request));
    return [true, JSON.stringify(result === undefined ? null : result)];
  } catch (e) {
    const body = errorBody(e);
    console.error(`Invoke Error \t${JSON.stringify(body)}`);
    return [false, JSON.stringify(body)];
  }
}

async function main() {
  const version = process.env.AWS_LAMBDA_FUNCTION_VERSION || "$LATEST";
  const memory = process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE || "128";
  captured = [];
  const [handler, initError] = await loadHandler();
  let pendingInit = captured.join("");
  captured = null;
  protoWrite(JSON.stringify({ type: "ready" }) + "\n");

  const lines = readline.createInterface({ input: process.stdin, terminal: false });
  for await (const line of lines) {
    if (!line.trim()) continue;
    const request = JSON.parse(line);
    requestId = request.request_id;
    captured = [];
    const started = process.hrtime.bigint();
    const [ok, payload] = await invoke(handler, initError, request);
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    const out = captured.join("");
    captured = null;
    const rssMb = Math.round(process.memoryUsage().rss / (1024 * 1024));
    const logs =
      pendingInit +
      `START RequestId: ${requestId} Version: ${version}\n` +
      out +
      `END RequestId: ${requestId}\n` +
      `REPORT RequestId: ${requestId}\tDuration: ${ms.toFixed(2)} ms\tBilled Duration: ${Math.max(1, Math.ceil(ms))} ms\t` +
      `Memory Size: ${memory} MB\tMax Memory Used: ${rssMb} MB\t\n`;
    pendingInit = "";
    protoWrite(JSON.stringify({ ok, payload, logs }) + "\n");
  }
  process.exit(0);
}

main().catch((e) => {
  hostErr(`lambda_worker.js failed: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
