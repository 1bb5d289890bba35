// client_test.cjs - drives `spoke serve` with the official `ollama` npm client
// (pinned in package-lock.json). Usage: node client_test.cjs MODULE_DIR URL MODEL
// Prints one line per check ("ok ..." / "FAIL ..."), exits 1 if any failed.
'use strict';
const path = require('path');
const [moduleDir, host, model] = process.argv.slice(2);
const { Ollama } = require(path.join(moduleDir, 'node_modules', 'ollama'));
const ollama = new Ollama({ host });
let failed = 0;
function check(cond, what) {
  console.log((cond ? 'ok   ' : 'FAIL ') + what);
  if (!cond) failed++;
}
async function expectError(p, status, contains, what) {
  try {
    await p;
    check(false, what + ' (no error)');
  } catch (e) {
    const msg = String(e && e.message);
    check(e && e.status_code === status && (!contains || msg.includes(contains)),
          `${what} -> ${status} (${e && e.name} ${e && e.status_code}: ${msg})`);
  }
}

(async () => {
  const v = await ollama.version();
  check(typeof v.version === 'string', 'version ' + v.version);
  const list = await ollama.list();
  check(list.models.some(m => m.name === model && m.details.format === 'gguf'), 'list has ' + model);
  const show = await ollama.show({ model });
  check(show.model_info['general.architecture'] === 'llama', 'show model_info');
  const ps = await ollama.ps();
  check(ps.models.length >= 1 && ps.models[0].context_length > 0, 'ps');

  const opts = { temperature: 0, num_predict: 12 };
  const gen = await ollama.generate({ model, prompt: 'Once upon a time', raw: true, options: opts });
  check(gen.done && gen.response.length > 0 && gen.eval_count === 12, 'generate: ' + JSON.stringify(gen.response));
  let streamed = '', parts = 0, last = null;
  for await (const part of await ollama.generate({ model, prompt: 'Once upon a time', raw: true, options: opts,
                                                   stream: true })) {
    streamed += part.response; parts++; last = part;
  }
  check(parts > 1 && last.done && last.done_reason === 'length', `generate stream: ${parts} parts`);
  check(streamed === gen.response, 'stream text = non-stream text');

  const messages = [{ role: 'user', content: 'Tell me a story' }];
  const chat = await ollama.chat({ model: model + ':latest', messages, options: opts });
  check(chat.message.role === 'assistant' && chat.message.content.length > 0 && chat.done, 'chat: ' +
        JSON.stringify(chat.message.content));
  let ctext = '';
  for await (const part of await ollama.chat({ model, messages, options: opts, stream: true }))
    ctext += part.message.content;
  check(ctext === chat.message.content, 'chat stream = chat');

  // abort a long stream: the client stops, the server stays healthy
  const s = await ollama.chat({ model, messages, options: { num_predict: 400 }, stream: true });
  let n = 0, aborted = false;
  try {
    for await (const part of s) {
      if (++n === 3) s.abort();
      if (part.done) break;
    }
  } catch (e) {
    aborted = e.name === 'AbortError';
  }
  check(aborted && n < 400, `abort after ${n} parts`);
  const again = await ollama.generate({ model, prompt: 'Hi', raw: true, options: { num_predict: 2 } });
  check(again.done, 'serving after an abort');

  // format: a JSON schema constrains the reply (the demo model knows no JSON)
  const schema = { type: 'object', properties: { answer: { type: 'string', enum: ['yes', 'no'] } },
                   required: ['answer'] };
  const fj = await ollama.chat({ model, messages, format: schema, options: { temperature: 0, num_predict: 32 } });
  let parsed = null;
  try { parsed = JSON.parse(fj.message.content); } catch (e) { parsed = null; }
  check(parsed && ['yes', 'no'].includes(parsed.answer), 'format schema: ' + JSON.stringify(fj.message.content));
  await expectError(ollama.chat({ model, messages, format: 'xml' }), 400, 'format', 'format xml refused');
  await expectError(ollama.chat({ model: 'no-such-model', messages }), 404, 'not exist', 'unknown model');
  // the demo model has no pooling type: embeddings are refused as a client mistake
  await expectError(ollama.embed({ model, input: 'x' }), 400, 'generation-only', 'embed on a generation model');

  const pulled = [];
  for await (const p of await ollama.pull({ model, stream: true })) pulled.push(p.status);
  check(pulled[pulled.length - 1] === 'success', 'pull of a served model: ' + pulled.join(', '));
  process.exit(failed ? 1 : 0);
})().catch(e => {
  console.log('FAIL exception: ' + (e && e.stack || e));
  process.exit(1);
});
