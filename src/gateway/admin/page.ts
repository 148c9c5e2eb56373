import { createHash } from 'node:crypto'

/*
 * The status page, whole: HTML, CSS and script in one document served by the admin listener
 * (no CDN, no web fonts, nothing fetched but its own /api). Embedded as strings so `tsc` ships it.
 * The script is plain ES2020 without template literals (it lives inside one).
 */

const STYLE = `
:root{--bg:#f6f7f9;--fg:#1b1f24;--muted:#667085;--card:#fff;--line:#e4e7ec;--ok:#12805c;--okbg:#e7f6ef;--bad:#c4320a;--badbg:#fdecea;--warn:#b54708;--warnbg:#fef4e6;--accent:#2563eb;--chip:#eef2f6}
@media (prefers-color-scheme:dark){:root{--bg:#0f1216;--fg:#e6e8eb;--muted:#98a2b3;--card:#171b21;--line:#2a3039;--ok:#3ccb8f;--okbg:#12291f;--bad:#ff7a59;--badbg:#351a14;--warn:#f5a524;--warnbg:#33260f;--accent:#6ea2ff;--chip:#232a33}}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--fg);font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans","Helvetica Neue",Arial,sans-serif}
header{display:flex;align-items:center;gap:12px;padding:10px 16px;background:var(--card);border-bottom:1px solid var(--line);position:sticky;top:0;z-index:2}
header h1{font-size:16px;margin:0;font-weight:650;letter-spacing:.2px}
header .host{color:var(--muted);font-size:13px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.conn{margin-left:auto;font-size:12px;padding:3px 8px;border-radius:999px;background:var(--chip);color:var(--muted);white-space:nowrap}
.conn.live{background:var(--okbg);color:var(--ok)}
.conn.down{background:var(--badbg);color:var(--bad)}
main{padding:14px 16px 24px;max-width:1400px;margin:0 auto}
.tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(140px,1fr));gap:10px;margin-bottom:12px}
.tile{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:10px 12px;min-width:0}
.tile .k{font-size:12px;color:var(--muted);text-transform:uppercase;letter-spacing:.4px}
.tile .v{font-size:26px;font-weight:650;font-variant-numeric:tabular-nums;line-height:1.2}
.tile .v small{font-size:14px;color:var(--muted);font-weight:500}
.tile .sub{font-size:12px;color:var(--muted)}
.tile.bad{border-color:var(--bad);background:var(--badbg)} .tile.bad .v{color:var(--bad)}
.tile.warn{border-color:var(--warn);background:var(--warnbg)} .tile.warn .v{color:var(--warn)}
.tile.rec{grid-column:span 2}
.spark{display:flex;align-items:flex-end;gap:1px;height:30px;margin-top:4px}
.spark i{flex:1;background:var(--accent);opacity:.75;min-height:1px;border-radius:1px 1px 0 0}
.alert{background:var(--badbg);color:var(--bad);border:1px solid var(--bad);border-radius:10px;padding:8px 12px;margin-bottom:12px;font-weight:550}
.controls{display:flex;flex-wrap:wrap;gap:8px;align-items:center;margin-bottom:10px}
.controls input[type=search]{flex:1 1 260px;min-width:0;font:inherit;padding:8px 10px;border:1px solid var(--line);border-radius:8px;background:var(--card);color:var(--fg)}
.controls select{font:inherit;padding:7px 8px;border:1px solid var(--line);border-radius:8px;background:var(--card);color:var(--fg)}
.seg{display:inline-flex;border:1px solid var(--line);border-radius:8px;overflow:hidden;background:var(--card)}
.seg button{font:inherit;border:0;background:none;color:var(--fg);padding:7px 10px;cursor:pointer;border-right:1px solid var(--line)}
.seg button:last-child{border-right:0}
.seg button[aria-pressed=true]{background:var(--accent);color:#fff}
.seg button .n{font-variant-numeric:tabular-nums;opacity:.8;margin-left:4px}
.panel{background:var(--card);border:1px solid var(--line);border-radius:10px;overflow:hidden;margin-bottom:14px}
.panel h2{font-size:13px;margin:0;padding:9px 12px;border-bottom:1px solid var(--line);color:var(--muted);text-transform:uppercase;letter-spacing:.4px;font-weight:600;display:flex;gap:8px}
.panel h2 .count{margin-left:auto;text-transform:none;letter-spacing:0}
.scroll{overflow:auto;max-height:70vh}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:7px 12px;border-bottom:1px solid var(--line);white-space:nowrap;font-variant-numeric:tabular-nums}
th{font-size:12px;color:var(--muted);font-weight:600;position:sticky;top:0;background:var(--card);cursor:pointer;user-select:none}
th[aria-sort]::after{content:" \\2193";color:var(--accent)}
tbody tr:last-child td{border-bottom:0}
tr.off{background:var(--badbg)}
tr.silent{background:var(--warnbg)}
td.name{font-weight:600}
.dot{display:inline-block;width:9px;height:9px;border-radius:50%;margin-right:6px;vertical-align:0;background:var(--ok)}
.off .dot{background:var(--bad)} .silent .dot{background:var(--warn)}
.state{font-size:12px;font-weight:600;color:var(--ok)} .off .state{color:var(--bad)} .silent .state{color:var(--warn)}
.chip{display:inline-block;background:var(--chip);border-radius:999px;padding:1px 7px;margin:0 3px 1px 0;font-size:12px}
.muted{color:var(--muted)}
.pill{display:inline-block;border-radius:999px;padding:1px 8px;font-size:12px;font-weight:600;background:var(--chip)}
.pill.ok{background:var(--okbg);color:var(--ok)} .pill.failed,.pill.timeout,.pill.unknown{background:var(--badbg);color:var(--bad)} .pill.queued,.pill.delivered{background:var(--warnbg);color:var(--warn)}
.grid2{display:grid;grid-template-columns:3fr 2fr;gap:14px}
.empty{padding:14px 12px;color:var(--muted)}
footer{color:var(--muted);font-size:12px;padding:0 16px 18px;max-width:1400px;margin:0 auto}
dialog{border:1px solid var(--line);border-radius:12px;background:var(--card);color:var(--fg);padding:18px;max-width:360px;width:90vw}
dialog input{width:100%;font:inherit;padding:8px 10px;margin:8px 0 12px;border:1px solid var(--line);border-radius:8px;background:var(--bg);color:var(--fg)}
dialog button{font:inherit;padding:7px 14px;border-radius:8px;border:0;background:var(--accent);color:#fff;cursor:pointer}
@media (max-width:900px){.grid2{grid-template-columns:1fr}.tile.rec{grid-column:span 1}}
@media (max-width:700px){
 main{padding:10px}
 .tiles{grid-template-columns:repeat(2,1fr)}
 .tile.rec{grid-column:span 2}
 .scroll{max-height:none}
 #devices thead{display:none}
 #devices tr{display:grid;grid-template-columns:1fr auto;gap:2px 10px;padding:8px 12px;border-bottom:1px solid var(--line)}
 #devices td{border:0;padding:0;white-space:normal}
 #devices td[data-l]::before{content:attr(data-l) " ";color:var(--muted);font-size:12px}
 #devices td.name{grid-column:1}
 #devices td.st{grid-column:2;text-align:right}
 #devices td.wide{grid-column:1/3}
}
`

const SCRIPT = `
(function(){
'use strict';
var KEY='doorctl-admin-token';
var token=sessionStorage.getItem(KEY)||'';
var view=null, skew=0, mode='all', proto='', sortBy='state', q='';
var $=function(id){return document.getElementById(id)};
function esc(s){return String(s==null?'':s).replace(/[&<>"']/g,function(c){return {'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'}[c]})}
function now(){return Date.now()+skew}
function ago(iso){
  if(!iso)return '<span class="muted">never</span>';
  var s=Math.max(0,Math.round((now()-Date.parse(iso))/1000));
  var t=s<60?s+'s':s<3600?Math.floor(s/60)+'m '+(s%60)+'s':s<86400?Math.floor(s/3600)+'h '+Math.floor(s%3600/60)+'m':Math.floor(s/86400)+'d';
  return '<span title="'+esc(new Date(iso).toLocaleString())+'">'+t+' ago</span>';
}
function dur(s){return s<60?s+'s':s<3600?Math.floor(s/60)+'m':s<86400?Math.floor(s/3600)+'h '+Math.floor(s%3600/60)+'m':Math.floor(s/86400)+'d '+Math.floor(s%86400/3600)+'h'}
function setConn(cls,text){var c=$('conn');c.className='conn '+cls;c.textContent=text}
function favicon(color){
  var l=document.querySelector('link[rel=icon]');
  l.href='data:image/svg+xml,'+encodeURIComponent('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><circle cx="8" cy="8" r="7" fill="'+color+'"/></svg>');
}
function askToken(msg){
  $('loginmsg').textContent=msg;
  if(!$('login').open)$('login').showModal();
}
$('loginform').addEventListener('submit',function(e){
  e.preventDefault();token=$('token').value.trim();sessionStorage.setItem(KEY,token);$('login').close();connect();
});
var ctrl=null;
function connect(){
  if(ctrl)ctrl.abort();
  ctrl=new AbortController();
  var mine=ctrl;
  setConn('','connecting');
  fetch('api/events',{headers:token?{Authorization:'Bearer '+token}:{},cache:'no-store',signal:mine.signal}).then(function(res){
    if(res.status===401){askToken(token?'That token was refused. Enter the admin token:':'This gateway needs its admin token:');setConn('down','locked');return}
    if(!res.ok||!res.body)throw new Error('HTTP '+res.status);
    setConn('live','live');
    var reader=res.body.getReader(),dec=new TextDecoder(),buf='';
    function pump(){return reader.read().then(function(r){
      if(r.done)throw new Error('closed');
      buf+=dec.decode(r.value,{stream:true});
      var i;
      while((i=buf.indexOf('\\n\\n'))>=0){
        var frame=buf.slice(0,i);buf=buf.slice(i+2);
        var lines=frame.split('\\n'),ev=(lines.filter(function(l){return l.indexOf('event:')===0})[0]||'event: view').slice(6).trim();
        var data=lines.filter(function(l){return l.indexOf('data:')===0}).map(function(l){return l.slice(5)}).join('\\n');
        if(!data)continue;
        var msg=JSON.parse(data);
        if(ev==='pulse'){if(view)pulse(msg)}else view=msg;
        skew=Date.parse(msg.now)-Date.now();render();
      }
      return pump();
    })}
    return pump();
  }).catch(function(){
    if(mine.signal.aborted)return;
    setConn('down','reconnecting');favicon('#98a2b3');
    setTimeout(function(){if(ctrl===mine)connect()},1000);
  });
}
// between whole views: each door's last call and latest record (ms, in the view's device order), records per minute
function pulse(p){
  var iso=function(ms){return ms==null?null:new Date(ms).toISOString()};
  view.devices.forEach(function(d,i){d.last_seen=iso(p.last_seen[i]);d.last_record=iso(p.last_record[i])});
  view.records_per_minute=p.records_per_minute;
  view.gateway.records_last_hour=p.records_per_minute.reduce(function(a,b){return a+b},0);
  view.now=p.now;
}
function matches(d){
  if(mode==='offline'&&d.online)return false;
  if(mode==='silent'&&!(d.silent&&d.online))return false;
  if(mode==='queued'&&!d.queued)return false;
  if(proto&&d.protocol!==proto)return false;
  if(!q)return true;
  return q.split(/\\s+/).every(function(w){
    var m=/^(tag|protocol|name):(.*)$/.exec(w);
    if(m){var v=m[2];return m[1]==='tag'?d.tags.some(function(t){return t.toLowerCase()===v}):m[1]==='protocol'?d.protocol===v:d.name.toLowerCase().indexOf(v)>=0}
    return (d.name+' '+d.protocol+' '+d.tags.join(' ')+' '+d.address).toLowerCase().indexOf(w)>=0;
  });
}
function rank(d){return d.online?(d.silent?1:2):0}
function sorter(a,b){
  if(sortBy==='name')return a.name.localeCompare(b.name,undefined,{numeric:true});
  if(sortBy==='protocol')return a.protocol.localeCompare(b.protocol)||a.name.localeCompare(b.name,undefined,{numeric:true});
  if(sortBy==='seen')return (Date.parse(a.last_seen||0)||0)-(Date.parse(b.last_seen||0)||0);
  if(sortBy==='queued')return b.queued-a.queued||a.name.localeCompare(b.name,undefined,{numeric:true});
  if(sortBy==='record')return (Date.parse(b.last_record||0)||0)-(Date.parse(a.last_record||0)||0);
  return rank(a)-rank(b)||a.name.localeCompare(b.name,undefined,{numeric:true});
}
function tile(k,v,cls,sub){return '<div class="tile '+(cls||'')+'"><div class="k">'+k+'</div><div class="v">'+v+'</div>'+(sub?'<div class="sub" title="'+esc(sub)+'">'+esc(sub)+'</div>':'')+'</div>'}
function render(){
  if(!view)return;
  var g=view.gateway,ds=view.devices;
  var off=ds.filter(function(d){return !d.online}).length;
  var sil=ds.filter(function(d){return d.online&&d.silent}).length;
  var qd=ds.filter(function(d){return d.queued>0}).length;
  $('host').textContent=g.host+' \\u00b7 pid '+g.pid+(view.store?' \\u00b7 '+g.devices_here+' doors call this gateway, '+view.other_gateways.reduce(function(n,o){return n+(o.devices_here||0)},0)+' call the '+view.other_gateways.length+' other'+(view.other_gateways.length===1?'':'s')+' on '+view.store:'');
  var rpm=view.records_per_minute,max=Math.max.apply(null,rpm.concat([1]));
  $('tiles').innerHTML=
    tile('Online',(ds.length-off)+' <small>/ '+ds.length+'</small>','',Object.keys(g.devices.by_protocol).sort().map(function(p){var c=g.devices.by_protocol[p];return p+' '+c.online+'/'+(c.online+c.offline)}).join(' \u00b7 '))+
    tile('Offline',off,off?'bad':'')+
    tile('Silent',sil,sil?'warn':'','missed 3 heartbeats')+
    tile('Queued commands',g.queue_depth.total,g.queue_depth.total?'warn':'')+
    tile('Discovered',g.discovered_devices,g.discovered_devices?'warn':'')+
    '<div class="tile rec"><div class="k">Records \\u00b7 last hour '+g.records_last_hour+' \\u00b7 this minute '+rpm[rpm.length-1]+'</div><div class="spark" title="records per minute, last 60 minutes">'+
      rpm.map(function(n){return '<i style="height:'+Math.round(n/max*100)+'%" title="'+n+'"></i>'}).join('')+'</div></div>';
  var pr=$('problems');
  if(g.problems.length){pr.hidden=false;pr.textContent='Unhealthy: '+g.problems.join('; ')}else pr.hidden=true;
  var counts={all:ds.length,offline:off,silent:sil,queued:qd};
  Array.prototype.forEach.call(document.querySelectorAll('.seg button'),function(b){b.querySelector('.n').textContent=counts[b.dataset.mode]});
  var protos=Object.keys(g.devices.by_protocol).sort(),sel=$('proto');
  var want='<option value="">All protocols</option>'+protos.map(function(p){return '<option value="'+esc(p)+'"'+(p===proto?' selected':'')+'>'+esc(p)+'</option>'}).join('');
  if(sel.dataset.k!==want){sel.innerHTML=want;sel.dataset.k=want}
  var rows=ds.filter(matches).sort(sorter);
  $('devcount').textContent=rows.length===ds.length?ds.length+' devices':rows.length+' of '+ds.length+' devices';
  $('devbody').innerHTML=rows.length?rows.map(function(d){
    var cls=d.online?(d.silent?'silent':''):'off';
    return '<tr class="'+cls+'"><td class="name"><span class="dot"></span>'+esc(d.name)+'</td>'+
      '<td class="st"><span class="state">'+(d.online?(d.silent?'silent':'online'):'offline')+'</span></td>'+
      '<td data-l="protocol">'+esc(d.protocol)+'</td>'+
      '<td class="wide">'+d.tags.map(function(t){return '<span class="chip">'+esc(t)+'</span>'}).join('')+'</td>'+
      '<td data-l="seen">'+ago(d.last_seen)+'</td>'+
      '<td data-l="from" class="muted">'+esc(d.address||'\\u2014')+'</td>'+
      '<td data-l="queued">'+(d.queued?'<span class="pill queued">'+d.queued+'</span>':'<span class="muted">0</span>')+'</td>'+
      '<td data-l="last record">'+ago(d.last_record)+'</td></tr>';
  }).join(''):'<tr><td colspan="8" class="empty">No device matches.</td></tr>';
  $('cmdcount').textContent=view.commands.length;
  $('cmdbody').innerHTML=view.commands.length?view.commands.map(function(c){
    return '<tr><td class="muted">'+new Date(c.created_at).toLocaleTimeString()+'</td><td>'+esc(c.device)+'</td><td>'+esc(c.kind)+'</td><td><span class="pill '+esc(c.status)+'" title="'+esc(c.message||'')+'">'+esc(c.status)+'</span></td></tr>';
  }).join(''):'<tr><td colspan="4" class="empty">No commands in the last hour.</td></tr>';
  $('disccount').textContent=view.discovered.length;
  $('discbody').innerHTML=view.discovered.length?view.discovered.map(function(d){
    return '<tr><td>'+esc(d.identity)+'</td><td>'+esc(d.protocol)+'</td><td class="muted">'+esc(d.address)+'</td><td>'+ago(d.last_seen)+'</td></tr>';
  }).join(''):'<tr><td colspan="4" class="empty">None: every device that called is in the inventory.</td></tr>';
  var refused=view.refused||[];
  $('refcount').textContent=refused.length;
  $('refbody').innerHTML=refused.length?refused.map(function(r){
    return '<tr><td>'+(r.device?esc(r.device):'<span class="muted">\\u2014</span>')+'</td><td>'+esc(r.protocol)+'</td><td class="muted">'+esc(r.address)+'</td><td><span class="pill failed">'+esc(r.reason)+'</span></td><td>'+r.count+'</td><td>'+ago(r.last_at)+'</td></tr>';
  }).join(''):'<tr><td colspan="6" class="empty">None: no request, datagram or broker client was refused.</td></tr>';
  var ports=Object.keys(g.ports).map(function(k){return k.replace(/_port$/,'')+' '+g.ports[k]}).join(', ');
  $('foot').textContent='doorctl gateway on '+g.bind+' ('+ports+') \\u00b7 up '+dur(g.uptime_seconds)+' \\u00b7 updated '+new Date(Date.parse(view.now)).toLocaleTimeString();
  document.title=(off?off+' offline \\u00b7 ':'all online \\u00b7 ')+'doorctl';
  favicon(g.problems.length||off?'#c4320a':sil?'#b54708':'#12805c');
}
$('q').addEventListener('input',function(e){q=e.target.value.trim().toLowerCase();render()});
$('proto').addEventListener('change',function(e){proto=e.target.value;render()});
Array.prototype.forEach.call(document.querySelectorAll('.seg button'),function(b){
  b.addEventListener('click',function(){mode=b.dataset.mode;Array.prototype.forEach.call(document.querySelectorAll('.seg button'),function(x){x.setAttribute('aria-pressed',String(x===b))});render()});
});
Array.prototype.forEach.call(document.querySelectorAll('#devices th[data-sort]'),function(th){
  th.addEventListener('click',function(){sortBy=th.dataset.sort;Array.prototype.forEach.call(document.querySelectorAll('#devices th'),function(x){x.removeAttribute('aria-sort')});th.setAttribute('aria-sort','descending');render()});
});
document.addEventListener('keydown',function(e){if(e.key==='/'&&document.activeElement!==$('q')){e.preventDefault();$('q').focus()}});
setInterval(render,5000);
connect();
})();
`

const BODY = `
<header><h1>doorctl</h1><span class="host" id="host"></span><span class="conn" id="conn">connecting</span></header>
<main>
<section class="tiles" id="tiles" aria-label="summary"></section>
<div class="alert" id="problems" role="alert" hidden></div>
<section class="controls">
<input type="search" id="q" placeholder="Filter by name, tag, protocol, address (tag:lobby, protocol:udp) \u2014 press /" aria-label="filter" autocomplete="off">
<div class="seg" role="group" aria-label="show">
<button data-mode="all" aria-pressed="true">All<span class="n"></span></button><button data-mode="offline" aria-pressed="false">Offline<span class="n"></span></button><button data-mode="silent" aria-pressed="false">Silent<span class="n"></span></button><button data-mode="queued" aria-pressed="false">Queued<span class="n"></span></button>
</div>
<select id="proto" aria-label="protocol"></select>
</section>
<section class="panel"><h2>Devices<span class="count" id="devcount"></span></h2><div class="scroll">
<table id="devices"><thead><tr><th data-sort="name">Device</th><th data-sort="state" aria-sort="descending">State</th><th data-sort="protocol">Protocol</th><th>Tags</th><th data-sort="seen">Last seen</th><th>Called from</th><th data-sort="queued">Queued</th><th data-sort="record">Last record</th></tr></thead><tbody id="devbody"><tr><td colspan="8" class="empty">Waiting for the gateway\u2026</td></tr></tbody></table>
</div></section>
<div class="grid2">
<section class="panel"><h2>Commands, last hour<span class="count" id="cmdcount"></span></h2><div class="scroll"><table><thead><tr><th>Queued</th><th>Device</th><th>Kind</th><th>Status</th></tr></thead><tbody id="cmdbody"></tbody></table></div></section>
<section class="panel"><h2>Discovered devices<span class="count" id="disccount"></span></h2><div class="scroll"><table><thead><tr><th>Identity</th><th>Protocol</th><th>Address</th><th>Last seen</th></tr></thead><tbody id="discbody"></tbody></table></div></section>
</div>
<section class="panel"><h2>Refused contacts<span class="count" id="refcount"></span></h2><div class="scroll"><table><thead><tr><th>Device</th><th>Protocol</th><th>From</th><th>Reason</th><th>Times</th><th>Last</th></tr></thead><tbody id="refbody"></tbody></table></div></section>
</main>
<footer id="foot"></footer>
<dialog id="login"><form id="loginform"><p id="loginmsg"></p><input type="password" id="token" autocomplete="current-password" aria-label="admin token"><button type="submit">Open</button></form></dialog>
`

export const STATUS_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>doorctl</title><link rel="icon" href="data:,"><meta name="color-scheme" content="light dark">
<style>${STYLE}</style></head><body>${BODY}<script>${SCRIPT}</script></body></html>
`

/** Only this page's own script runs, and it talks only to this listener. */
export const STATUS_PAGE_CSP = [
  "default-src 'none'",
  `script-src 'sha256-${createHash('sha256').update(SCRIPT).digest('base64')}'`,
  "style-src 'unsafe-inline'",
  "connect-src 'self'",
  'img-src data:',
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ')
