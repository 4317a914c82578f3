// opsbus webhook media type for Zabbix 6.0+ (Administration > Media types > Import, or paste as the script of
// a Webhook media type). It posts one problem or recovery to the opsbus gateway's POST /v1/alerts/zabbix.
//
// Parameters (name: value given in the media type; macros are resolved by Zabbix per event):
//   opsbus_url:      https://opsbus.example.com            (the gateway's base URL)
//   opsbus_token:    the gateway's OPSBUS_GATEWAY__ZABBIX__BEARER_TOKEN
//   event_id:        {EVENT.ID}          (in a recovery operation still the problem's id: one identity for both)
//   event_value:     {EVENT.VALUE}       (1 problem, 0 recovery)
//   event_nseverity: {EVENT.NSEVERITY}   (0 Not classified .. 5 Disaster)
//   event_date:      {EVENT.DATE}        event_time: {EVENT.TIME}
//   recovery_date:   {EVENT.RECOVERY.DATE}   recovery_time: {EVENT.RECOVERY.TIME}
//   host:            {HOST.HOST}         trigger_id: {TRIGGER.ID}    trigger_name: {EVENT.NAME}
//   event_tags:      {EVENT.TAGSJSON}    event_opdata: {EVENT.OPDATA}
//   zabbix_url:      {$ZABBIX.URL}       (optional: links back to the event)
//
// It throws on any answer but 200, so Zabbix marks the alert failed and retries it (the media type's
// "Attempts"); the gateway deduplicates retries. Nothing secret is logged.

function isMacro(value) {
  return typeof value !== 'string' || value === '' || /^\{[A-Z0-9_.$]+\}$/.test(value);
}

// Zabbix formats {EVENT.DATE} as YYYY.MM.DD and {EVENT.TIME} as HH:MM:SS in the server's time zone; the
// script runs in the same server, so a local Date of those parts is the right instant.
function isoTime(date, time) {
  if (isMacro(date) || isMacro(time)) {
    return null;
  }
  var d = date.split('.');
  var t = time.split(':');
  var when = new Date(+d[0], +d[1] - 1, +d[2], +t[0], +t[1], +t[2]);
  if (isNaN(when.getTime())) {
    throw 'opsbus: cannot read the event time "' + date + ' ' + time + '"';
  }
  return when.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function buildEvent(p) {
  var tags = [];
  if (!isMacro(p.event_tags)) {
    tags = JSON.parse(p.event_tags).map(function (t) {
      return { tag: String(t.tag), value: String(t.value || '') };
    });
  }
  var problem = String(p.event_value) === '1';
  var event = {
    event_id: String(p.event_id),
    status: problem ? 'problem' : 'resolved',
    severity: parseInt(p.event_nseverity, 10),
    host: p.host,
    trigger_id: String(p.trigger_id),
    trigger_name: p.trigger_name,
    started_at: isoTime(p.event_date, p.event_time),
    ended_at: problem ? null : isoTime(p.recovery_date, p.recovery_time),
    tags: tags,
    opdata: isMacro(p.event_opdata) ? '' : p.event_opdata
  };
  if (!isMacro(p.zabbix_url)) {
    event.event_url = p.zabbix_url.replace(/\/+$/, '') + '/tr_events.php?triggerid=' + p.trigger_id +
      '&eventid=' + p.event_id;
  }
  return event;
}

function send(p) {
  if (isMacro(p.opsbus_url) || isMacro(p.opsbus_token)) {
    throw 'opsbus: the opsbus_url and opsbus_token parameters are required';
  }
  var request = new HttpRequest();
  request.addHeader('Content-Type: application/json');
  request.addHeader('Authorization: Bearer ' + p.opsbus_token);
  var body = JSON.stringify(buildEvent(p));
  var answer = request.post(p.opsbus_url.replace(/\/+$/, '') + '/v1/alerts/zabbix', body);
  var status = request.getStatus();
  if (status !== 200) {
    throw 'opsbus: the gateway answered ' + status + ': ' + String(answer).substring(0, 500);
  }
  return 'OK';
}

// Zabbix calls the script with the parameters as a JSON string in `value`.
if (typeof value !== 'undefined') {
  return send(JSON.parse(value));
}
