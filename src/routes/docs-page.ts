/**
 * The interactive API page at /docs. Self-contained (no CDN: the coordinator
 * may run where there is no internet): it reads /openapi.json and lets you
 * call each operation with a token kept in sessionStorage, never in the URL.
 */
export const DOCS_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>ClawBot Coordinator API</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
header{background:#1d2330;color:#fff;padding:14px 24px;display:flex;gap:16px;align-items:center;flex-wrap:wrap}
header h1{font-size:18px;margin:0;flex:1}
header input{width:340px;padding:6px;border-radius:4px;border:0}
main{max-width:1100px;margin:0 auto;padding:16px 24px}
h2{margin:24px 0 8px;font-size:16px}
details{background:#fff;border:1px solid #d9dde5;border-radius:6px;margin:6px 0}
summary{cursor:pointer;padding:8px 12px;display:flex;gap:10px;align-items:center}
.m{font-weight:700;font-family:monospace;min-width:58px;text-align:center;border-radius:3px;padding:2px 4px;color:#fff}
.get{background:#2f7de1}.post{background:#1f9d55}.delete{background:#d64545}.put,.patch{background:#c27c0e}
.p{font-family:monospace}.s{color:#5b6475}
.body{padding:8px 12px;border-top:1px solid #eef0f4}
label{display:block;margin:4px 0}label span{display:inline-block;min-width:140px;font-family:monospace}
textarea{width:100%;min-height:110px;font-family:monospace}
pre{background:#0f1420;color:#d6e2ff;padding:10px;border-radius:4px;overflow:auto;max-height:360px}
button{padding:6px 14px;border:0;border-radius:4px;background:#1d2330;color:#fff;cursor:pointer}
</style></head>
<body><header><h1>ClawBot Coordinator API</h1>
<label style="margin:0"><input id="token" type="password" placeholder="API token (kept in this tab only)" autocomplete="off"></label>
<a href="/openapi.json" style="color:#9cc3ff">openapi.json</a></header>
<main id="ops"><p>Loading…</p></main>
<script>
const tokenInput=document.getElementById('token');
tokenInput.value=sessionStorage.getItem('cbc-token')||'';
tokenInput.addEventListener('input',()=>sessionStorage.setItem('cbc-token',tokenInput.value));
const esc=s=>String(s).replace(/[&<>"]/g,c=>({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c]));
function example(schema,spec,depth){
  depth=depth||0; if(!schema||depth>5) return null;
  if(schema.$ref) return example(spec.components.schemas[schema.$ref.split('/').pop()],spec,depth+1);
  if(schema.example!==undefined) return schema.example;
  if(schema.default!==undefined) return schema.default;
  if(schema.type==='object'&&schema.properties){const o={};for(const[k,v]of Object.entries(schema.properties)){if((schema.required||[]).includes(k)) o[k]=example(v,spec,depth+1);}return o;}
  if(schema.type==='array') return [];
  if(schema.type==='string') return schema.enum?schema.enum[0]:'';
  if(schema.type==='integer'||schema.type==='number') return 0;
  if(schema.type==='boolean') return false;
  return {};
}
async function send(op,el){
  let path=op.path; const q=new URLSearchParams();
  for(const inp of el.querySelectorAll('input[data-in]')){
    if(!inp.value) continue;
    if(inp.dataset.in==='path') path=path.replace('{'+inp.dataset.name+'}',encodeURIComponent(inp.value));
    else q.set(inp.dataset.name,inp.value);
  }
  const headers={}; if(tokenInput.value) headers.Authorization='Bearer '+tokenInput.value;
  const ta=el.querySelector('textarea'); let body;
  if(ta){headers['Content-Type']='application/json'; body=ta.value;}
  const out=el.querySelector('pre'); out.textContent='…';
  try{
    const r=await fetch(path+(q.toString()?'?'+q:''),{method:op.method.toUpperCase(),headers,body});
    const text=await r.text(); let shown=text; try{shown=JSON.stringify(JSON.parse(text),null,2)}catch(e){}
    out.textContent=r.status+' '+r.statusText+'\\n\\n'+shown;
  }catch(e){out.textContent='request failed: '+e}
}
fetch('/openapi.json').then(r=>r.json()).then(spec=>{
  const byTag={};
  for(const[path,item]of Object.entries(spec.paths)) for(const[method,op]of Object.entries(item)){
    const tag=(op.tags||['Other'])[0]; (byTag[tag]=byTag[tag]||[]).push({path,method,op});
  }
  const main=document.getElementById('ops'); main.innerHTML='<p class="s">'+esc(spec.info.description||'')+'</p>';
  for(const[tag,ops]of Object.entries(byTag)){
    const h=document.createElement('h2'); h.textContent=tag; main.appendChild(h);
    for(const o of ops){
      const d=document.createElement('details');
      const params=(o.op.parameters||[]).map(p=>'<label><span>'+esc(p.name)+(p.required?'*':'')+'</span> <input data-in="'+esc(p.in)+'" data-name="'+esc(p.name)+'" placeholder="'+esc(p.in)+'"></label>').join('');
      const bodySchema=o.op.requestBody&&o.op.requestBody.content['application/json']&&o.op.requestBody.content['application/json'].schema;
      const body=bodySchema?'<textarea>'+esc(JSON.stringify(example(bodySchema,spec),null,2))+'</textarea>':'';
      d.innerHTML='<summary><span class="m '+o.method+'">'+o.method.toUpperCase()+'</span><span class="p">'+esc(o.path)+'</span><span class="s">'+esc(o.op.summary||'')+'</span></summary><div class="body">'+params+body+'<p><button>Send</button></p><pre></pre></div>';
      d.querySelector('button').addEventListener('click',()=>send(o,d));
      main.appendChild(d);
    }
  }
}).catch(e=>{document.getElementById('ops').textContent='could not load /openapi.json: '+e});
</script></body></html>`;
