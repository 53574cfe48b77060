/* CalmCall Coach SCORM launch page (SCORM 1.2, or 2004 4th edition when the package's
 * config says scorm_version "2004"; the runtime differences are all in RT below).
 *
 * 1. Finds the LMS's SCORM API (1.2: window.API, 2004: window.API_1484_11) up the frame
 *    chain, then in the opener's.
 * 2. Initializes, reads the learner id and name and the mastery score
 *    (1.2: cmi.core.student_id / student_name, cmi.student_data.mastery_score;
 *    2004: cmi.learner_id / learner_name, cmi.scaled_passing_score).
 * 3. Asks the CalmCall API for an embed token for that learner with the package
 *    credential (it can do nothing else), and frames the coach with it.
 * 4. Takes graded results from the coach by postMessage, only from the coach's origin,
 *    from the framed window, on this launch's channel; writes the best score,
 *    passed/failed against the mastery score and the session time; commits.
 *    (1.2: cmi.core.score.*, lesson_status, session_time HHHH:MM:SS;
 *    2004: cmi.score.scaled/raw/min/max, completion_status, success_status,
 *    session_time as an ISO 8601 duration.)
 * 5. Finishes (1.2: LMSFinish, 2004: Terminate) when the learner presses Finish or
 *    leaves the page.
 */
(function () {
  "use strict";
  var CFG = window.CALMCALL_PACKAGE || {};
  var V2004 = CFG.scorm_version === "2004";
  var RT = V2004 ? {
    name: "API_1484_11", initialize: "Initialize", getValue: "GetValue", setValue: "SetValue",
    commit: "Commit", finish: "Terminate", lastError: "GetLastError",
    learnerId: "cmi.learner_id", learnerName: "cmi.learner_name"
  } : {
    name: "API", initialize: "LMSInitialize", getValue: "LMSGetValue", setValue: "LMSSetValue",
    commit: "LMSCommit", finish: "LMSFinish", lastError: "LMSGetLastError",
    learnerId: "cmi.core.student_id", learnerName: "cmi.core.student_name"
  };
  var started = new Date().getTime();
  var api = null, mastery = CFG.mastery_score, best = null, finished = false;
  var coachOrigin = "", seen = {};
  var channel = randomId();
  var el = function (id) { return document.getElementById(id); };
  var frame = el("cc-coach"), statusEl = el("cc-status"), finishBtn = el("cc-finish");

  function randomId() {
    var bytes = new Uint8Array(16), out = "";
    (window.crypto || window.msCrypto).getRandomValues(bytes);
    for (var i = 0; i < bytes.length; i++) out += ("0" + bytes[i].toString(16)).slice(-2);
    return out;
  }

  function language() {
    var strings = CFG.strings || {};
    var wanted = [CFG.lang, (navigator.language || "").slice(0, 2).toLowerCase(), "en"];
    for (var i = 0; i < wanted.length; i++) {
      if (wanted[i] && strings[wanted[i]]) return wanted[i];
    }
    return "en";
  }
  var LANG = language();

  function t(key, values) {
    var table = (CFG.strings || {})[LANG] || {};
    var text = table[key] || ((CFG.strings || {}).en || {})[key] || key;
    return text.replace(/\{(\w+)\}/g, function (_, name) {
      return values && values[name] !== undefined ? String(values[name]) : "{" + name + "}";
    });
  }

  function show(key, values, kind) {
    statusEl.textContent = t(key, values);
    statusEl.className = kind === "error" ? "cc-error" : kind === "ok" ? "cc-ok" : "";
  }

  // -- the SCORM API discovery (ADL's algorithm: parents, then the opener's parents)
  function findAPI(win) {
    var hops = 0;
    try {
      while (win && !win[RT.name] && win.parent && win.parent !== win && hops < 500) {
        hops++;
        win = win.parent;
      }
      return (win && win[RT.name]) || null;
    } catch (e) {  // a frame of another origin: no API there
      return null;
    }
  }

  function locateAPI() {
    var found = findAPI(window);
    if (!found && window.opener) found = findAPI(window.opener);
    return found;
  }

  function call(what, a, b) {
    return b === undefined ? api[RT[what]](a) : api[RT[what]](a, b);
  }

  function setValue(name, value) {
    return String(call("setValue", name, value)) === "true";
  }

  function getValue(name) {
    return String(call("getValue", name) || "");
  }

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  function sessionTime() {  // 1.2: CMITimespan HHHH:MM:SS; 2004: timeinterval, ISO 8601 PT#H#M#S
    var s = Math.max(0, Math.round((new Date().getTime() - started) / 1000));
    var h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60, sec = s % 60;
    if (V2004) return "PT" + h + "H" + m + "M" + sec + "S";
    return pad(h) + ":" + pad(m) + ":" + pad(sec);
  }

  // -- starting the coach for this learner
  function launch(learner) {
    var url = String(CFG.api_url || "").replace(/\/?$/, "/") + "v1/scorm/launch";
    fetch(url, {
      method: "POST",
      mode: "cors",
      credentials: "omit",
      headers: { "Authorization": "Bearer " + CFG.credential, "Content-Type": "application/json" },
      body: JSON.stringify({ learner_id: learner })
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (body) {
        if (response.ok) return openCoach(body);
        if (response.status === 401) return show("scorm_package_invalid", null, "error");
        if (response.status === 403) return show("scorm_package_revoked", null, "error");
        if (response.status === 429) {
          var wait = Math.min(60, Math.max(1, parseInt(response.headers.get("Retry-After") || "5", 10)));
          show("scorm_busy", { seconds: wait });
          return setTimeout(function () { launch(learner); }, wait * 1000);
        }
        show("scorm_unreachable", null, "error");
      });
    }).catch(function () { show("scorm_unreachable", null, "error"); });
  }

  function openCoach(body) {
    var url = body.embed_url;
    if (!url) {  // the server does not know its public URL: the package does
      var app = String(CFG.app_url || "");
      if (CFG.scenario) app = app.split("?")[0].replace(/\/?$/, "/") + "roleplay";
      url = app + (app.indexOf("?") < 0 ? "?" : "&") + "embed=true&token=" + encodeURIComponent(body.token);
      if (CFG.scenario) url += "&scenario=" + encodeURIComponent(CFG.scenario);
      else if (CFG.question) url += "&question=" + encodeURIComponent(CFG.question);
    }
    url += "&lms_origin=" + encodeURIComponent(window.location.origin) + "&lms_channel=" + channel;
    if (CFG.lang) url += "&lang=" + encodeURIComponent(CFG.lang);
    coachOrigin = new URL(url, window.location.href).origin;
    frame.src = url;
    frame.hidden = false;
    finishBtn.hidden = false;
    show("scorm_ready");
  }

  // -- results from the coach
  window.addEventListener("message", function (event) {
    if (!coachOrigin || event.origin !== coachOrigin) return;
    if (event.source !== frame.contentWindow) return;
    var data = event.data;
    if (!data || data.type !== "calmcall:result" || data.channel !== channel) return;
    if (typeof data.id !== "string" || seen[data.id]) return;
    var score = Math.round(Number(data.score));
    if (!isFinite(score) || score < 0 || score > 100) return;
    seen[data.id] = true;
    record(score);
  });

  function record(score) {
    if (!api || finished) return;
    best = best === null ? score : Math.max(best, score);
    var passed = best >= mastery;
    if (V2004) {
      setValue("cmi.score.min", "0");
      setValue("cmi.score.max", "100");
      setValue("cmi.score.raw", String(best));
      setValue("cmi.score.scaled", String(best / 100));
      setValue("cmi.completion_status", "completed");
      setValue("cmi.success_status", passed ? "passed" : "failed");
      setValue("cmi.session_time", sessionTime());
    } else {
      setValue("cmi.core.score.min", "0");
      setValue("cmi.core.score.max", "100");
      setValue("cmi.core.score.raw", String(best));
      setValue("cmi.core.lesson_status", passed ? "passed" : "failed");
      setValue("cmi.core.session_time", sessionTime());
    }
    if (String(call("commit", "")) === "true") {
      show(passed ? "scorm_sent_passed" : "scorm_sent_failed", { score: best, mastery: mastery }, "ok");
    } else {
      show("scorm_commit_failed", { code: call("lastError") }, "error");
    }
    finishBtn.disabled = false;
  }

  function finish() {
    if (!api || finished) return;
    finished = true;
    setValue(V2004 ? "cmi.session_time" : "cmi.core.session_time", sessionTime());
    setValue(V2004 ? "cmi.exit" : "cmi.core.exit", V2004 ? "normal" : "");
    call("commit", "");
    call("finish", "");
    finishBtn.disabled = true;
    frame.hidden = true;
    frame.src = "about:blank";
    show("scorm_finished", null, "ok");
  }

  function start() {
    document.documentElement.lang = LANG;
    finishBtn.textContent = t("scorm_finish");
    finishBtn.addEventListener("click", finish);
    window.addEventListener("pagehide", finish);
    window.addEventListener("beforeunload", finish);
    show("scorm_connecting");
    api = locateAPI();
    if (!api) return show("scorm_no_lms", null, "error");
    if (String(call("initialize", "")) !== "true") {
      var code = call("lastError");
      api = null;
      return show("scorm_init_failed", { code: code }, "error");
    }
    var learner = getValue(RT.learnerId);
    var name = getValue(RT.learnerName);
    var fromLms = V2004 ? parseFloat(getValue("cmi.scaled_passing_score")) * 100
      : parseFloat(getValue("cmi.student_data.mastery_score"));
    if (isFinite(fromLms)) mastery = Math.round(fromLms * 100) / 100;
    if (!learner) return show("scorm_no_learner", null, "error");
    el("cc-who").textContent = t("scorm_signed_in", { name: name || learner });
    var status = getValue(V2004 ? "cmi.completion_status" : "cmi.core.lesson_status");
    if (status === "not attempted" || status === "unknown" || status === "") {
      setValue(V2004 ? "cmi.completion_status" : "cmi.core.lesson_status", "incomplete");
      call("commit", "");
    }
    launch(learner);
  }

  start();
})();
