// Runs deploy/zabbix/opsbus-media-type.js the way Zabbix's webhook runtime does: the script is the body of a
// function given `value` (the parameters as a JSON string), with a synchronous `HttpRequest` (here over curl).
// Usage: node zabbix_media_type.cjs SCRIPT PARAMS_JSON ; prints what the script returned, exits 1 if it threw.
'use strict';
const fs = require('fs');
const { execFileSync } = require('child_process');

class HttpRequest {
  constructor() { this.headers = []; this.status = 0; }
  addHeader(header) { this.headers.push(header); }
  post(url, body) {
    const args = ['-s', '-o', '-', '-w', '\n%{http_code}', '-X', 'POST', '--data-binary', '@-', url];
    for (const h of this.headers) { args.push('-H', h); }
    const out = execFileSync('curl', args, { input: body, encoding: 'utf8' });
    const cut = out.lastIndexOf('\n');
    this.status = parseInt(out.slice(cut + 1), 10);
    return out.slice(0, cut);
  }
  getStatus() { return this.status; }
}

const [script, params] = process.argv.slice(2);
const run = new Function('value', 'HttpRequest', fs.readFileSync(script, 'utf8'));
try {
  process.stdout.write(String(run(params, HttpRequest)));
} catch (err) {
  process.stdout.write(String(err));
  process.exit(1);
}
