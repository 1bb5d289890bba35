// sdk_test.cjs - drives `spoke serve` with the official `openai` npm SDK
// (pinned in package-lock.json). Usage: node sdk_test.cjs MODULE_DIR URL MODEL EMBD
// (EMBD: a JSON file {model, texts, vectors} of reference embeddings, or -)
// Prints one line per check ("ok ..." / "FAIL ..."), exits 1 if any failed.
// The demo model knows no tools or JSON: tool calls and structured outputs
// come from spoke's constrained decoding, so their shape and validity are
// what is checked here, through the SDK's own parsers and stream helpers.
'use strict';
const path = require('path');
const [moduleDir, baseURL, model, embdFile] = process.argv.slice(2);
const { OpenAI } = require(path.join(moduleDir, 'node_modules', 'openai'));
const client = new OpenAI({ baseURL: baseURL + '/v1', apiKey: 'unused', maxRetries: 0, timeout: 60000 });
let failed = 0;
function check(cond, what) {
  console.log((cond ? 'ok   ' : 'FAIL ') + what);
  if (!cond) failed++;
}
async function expectError(p, Cls, status, param, what) {
  try {
    await p;
    check(false, what + ' (no error)');
  } catch (e) {
    check(e instanceof Cls && e.status === status && (!param || e.param === param),
          `${what} -> ${Cls.name} ${status} (${e && e.constructor && e.constructor.name} ${e && e.status} ` +
          `${e && e.param}: ${e && e.message})`);
  }
}

const WEATHER = {
  type: 'object',
  properties: { city: { type: 'string', maxLength: 20 }, unit: { enum: ['celsius', 'fahrenheit'] },
                days: { type: 'integer', minimum: 1, maximum: 7 } },
  required: ['city', 'unit', 'days'], additionalProperties: false,
};
function weatherOk(a) {
  return a && typeof a.city === 'string' && a.city.length <= 20 && ['celsius', 'fahrenheit'].includes(a.unit) &&
         Number.isInteger(a.days) && a.days >= 1 && a.days <= 7 &&
         Object.keys(a).every(k => ['city', 'unit', 'days'].includes(k));
}
const tools = [
  { type: 'function', function: { name: 'get_weather', description: 'Weather forecast', parameters: WEATHER } },
  { type: 'function', function: { name: 'get_time', description: 'The time now' } },
];

(async () => {
  const models = await client.models.list();
  check(models.data.some(m => m.id === model), 'models.list has ' + model);

  // chat, non-streamed and streamed (same greedy text)
  const messages = [{ role: 'user', content: 'Tell me a story' }];
  const chat = await client.chat.completions.create({ model, messages, max_tokens: 16, temperature: 0 });
  const text = chat.choices[0].message.content;
  check(chat.object === 'chat.completion' && typeof text === 'string' && text.length > 0 &&
        chat.choices[0].finish_reason === 'length' && chat.usage.completion_tokens === 16,
        'chat: ' + JSON.stringify(text));
  let streamed = '', chunks = 0, usage = null;
  const stream = await client.chat.completions.create({ model, messages, max_tokens: 16, temperature: 0,
                                                        stream: true, stream_options: { include_usage: true } });
  for await (const c of stream) {
    chunks++;
    if (c.choices.length) streamed += c.choices[0].delta.content || '';
    if (c.usage) usage = c.usage;
  }
  check(chunks > 2 && streamed === text, `chat stream (${chunks} chunks) = chat`);
  check(usage && usage.total_tokens === chat.usage.total_tokens, 'stream include_usage');
  // the SDK's stream helper assembles the same message
  const helper = client.chat.completions.stream({ model, messages, max_tokens: 16, temperature: 0 });
  const fin = await helper.finalChatCompletion();
  check(fin.choices[0].message.content === text, 'chat.completions.stream().finalChatCompletion() = chat');

  // legacy completions
  const comp = await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 8, temperature: 0 });
  check(comp.object === 'text_completion' && comp.choices[0].text.length > 0, 'completions: ' +
        JSON.stringify(comp.choices[0].text));

  // tools: forced calls, the arguments valid for the schema
  for (const tool_choice of ['required', { type: 'function', function: { name: 'get_weather' } }]) {
    const r = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'Weather in Paris?' }],
                                                     tools, tool_choice, max_tokens: 120, temperature: 0.8, seed: 4 });
    const m = r.choices[0].message, tc = m.tool_calls || [];
    let args = null;
    try { args = JSON.parse(tc[0].function.arguments); } catch (e) { /* checked below */ }
    const named = typeof tool_choice === 'object';
    check(r.choices[0].finish_reason === 'tool_calls' && tc.length === 1 && tc[0].type === 'function' &&
          tc[0].id.startsWith('call_') && (named ? tc[0].function.name === 'get_weather'
                                                 : ['get_weather', 'get_time'].includes(tc[0].function.name)),
          `tool_choice ${JSON.stringify(tool_choice)}: one call ${tc[0] && tc[0].function.name}`);
    check(tc[0] && (tc[0].function.name === 'get_weather' ? weatherOk(args) : JSON.stringify(args) === '{}'),
          'tool call arguments valid: ' + (tc[0] && tc[0].function.arguments));
  }
  // streamed tool-call deltas, assembled by the SDK's stream helper and by hand
  const body = { model, messages: [{ role: 'user', content: 'Weather?' }], tools, max_tokens: 120, temperature: 0,
                 tool_choice: { type: 'function', function: { name: 'get_weather' } } };
  const tstream = client.chat.completions.stream(body);
  let argDeltas = '';
  tstream.on('tool_calls.function.arguments.delta', e => { argDeltas += e.arguments_delta; });
  const tfin = await tstream.finalChatCompletion();
  const ttc = tfin.choices[0].message.tool_calls || [];
  check(ttc.length === 1 && ttc[0].function.name === 'get_weather' && weatherOk(JSON.parse(ttc[0].function.arguments)),
        'streamed tool call assembled by the SDK: ' + (ttc[0] && ttc[0].function.arguments));
  check(tfin.choices[0].finish_reason === 'tool_calls', 'streamed finish_reason tool_calls');
  check(argDeltas === (ttc[0] && ttc[0].function.arguments), 'tool_calls.function.arguments.delta events');
  const nonStream = await client.chat.completions.create(body);
  check(nonStream.choices[0].message.tool_calls[0].function.arguments === ttc[0].function.arguments,
        'greedy: streamed call = non-streamed call');
  let byHand = '', nameByHand = '';
  for await (const c of await client.chat.completions.create({ ...body, stream: true }))
    for (const d of (c.choices[0] && c.choices[0].delta.tool_calls) || []) {
      nameByHand += (d.function && d.function.name) || '';
      byHand += (d.function && d.function.arguments) || '';
    }
  check(nameByHand === 'get_weather' && byHand === ttc[0].function.arguments, 'raw tool_calls deltas');
  // a tool result sent back is accepted
  const back = await client.chat.completions.create({ model, max_tokens: 8, temperature: 0, tools, messages: [
    { role: 'user', content: 'Weather?' }, { role: 'assistant', content: null, tool_calls: ttc },
    { role: 'tool', tool_call_id: ttc[0].id, content: '{"temp": 21}' }] });
  check(back.choices[0].message.role === 'assistant', 'tool result message accepted');

  // structured outputs: response_format json_schema, parsed by the SDK
  const person = { type: 'object', properties: { name: { type: 'string', maxLength: 16 },
                                                  age: { type: 'integer', minimum: 0, maximum: 120 },
                                                  pets: { type: 'array', items: { enum: ['cat', 'dog'] },
                                                          maxItems: 3 } },
                   required: ['name', 'age', 'pets'], additionalProperties: false };
  const parsed = await client.chat.completions.parse({
    model, messages: [{ role: 'user', content: 'A person' }], max_tokens: 120, temperature: 0.7, seed: 2,
    response_format: { type: 'json_schema', json_schema: { name: 'person', strict: true, schema: person } } });
  const p = parsed.choices[0].message.parsed;
  check(p && typeof p.name === 'string' && p.name.length <= 16 && Number.isInteger(p.age) && p.age <= 120 &&
        Array.isArray(p.pets) && p.pets.every(x => x === 'cat' || x === 'dog'),
        'response_format json_schema parsed by the SDK: ' + JSON.stringify(p));
  // json_object: any object, which this model may not close within max_tokens (then a prefix of one)
  const jo = await client.chat.completions.create({ model, messages, max_tokens: 200, temperature: 0.9, seed: 1,
                                                    response_format: { type: 'json_object' } });
  const jt = jo.choices[0].message.content;
  let obj = null;
  try { obj = JSON.parse(jt); } catch (e) { /* checked below */ }
  check(jo.choices[0].finish_reason === 'stop' ? obj !== null && typeof obj === 'object' && !Array.isArray(obj)
                                               : jo.choices[0].finish_reason === 'length' && jt.startsWith('{'),
        `response_format json_object (${jo.choices[0].finish_reason}): ${jt.slice(0, 80)}`);

  // logprobs: token text, bytes, alternatives
  const lp = await client.chat.completions.create({ model, messages, max_tokens: 6, temperature: 0, logprobs: true,
                                                    top_logprobs: 3 });
  const content = lp.choices[0].logprobs.content;
  check(content.length === 6 && content.every(e => typeof e.token === 'string' && e.logprob <= 0 &&
        Buffer.from(e.bytes).toString('utf8') === e.token && e.top_logprobs.length === 3),
        'logprobs: ' + JSON.stringify(content.map(e => e.token)));
  check(content.map(e => e.token).join('') === lp.choices[0].message.content, 'logprob tokens spell the text');

  // n > 1
  const n3 = await client.chat.completions.create({ model, messages, max_tokens: 12, temperature: 1, seed: 9, n: 3 });
  check(n3.choices.length === 3 && n3.choices.map(c => c.index).join() === '0,1,2' &&
        n3.usage.prompt_tokens === chat.usage.prompt_tokens, 'n=3: three choices, the prompt counted once');
  const byIndex = ['', '', ''];
  for await (const c of await client.chat.completions.create({ model, messages, max_tokens: 12, temperature: 1,
                                                               seed: 9, n: 3, stream: true }))
    for (const ch of c.choices) byIndex[ch.index] += ch.delta.content || '';
  check(byIndex.join('|') === n3.choices.map(c => c.message.content).join('|'), 'n=3 streamed by index = non-streamed');
  const g2 = await client.chat.completions.create({ model, messages, max_tokens: 16, temperature: 0, n: 2 });
  check(g2.choices[0].message.content === text && g2.choices[1].message.content === text,
        'greedy n=2: both choices equal n=1');

  // embeddings: the SDK asks for base64 and decodes it; float too; cosine with the numpy reference
  if (embdFile && embdFile !== '-') {
    const ref = JSON.parse(require('fs').readFileSync(embdFile, 'utf8'));
    const cos = (a, b) => a.reduce((s, x, i) => s + x * b[i], 0) /
      Math.sqrt(a.reduce((s, x) => s + x * x, 0) * b.reduce((s, x) => s + x * x, 0));
    for (const encoding_format of [undefined, 'float']) {
      const e = await client.embeddings.create({ model: ref.model, input: ref.texts, encoding_format });
      const ok = e.data.length === ref.texts.length && e.data.every((d, i) => d.index === i &&
        d.embedding.length === ref.vectors[i].length && cos(d.embedding, ref.vectors[i]) >= 0.9999);
      check(ok && e.usage.prompt_tokens > 0, `embeddings (${encoding_format || 'the SDK default, base64'}): ` +
            e.data.map((d, i) => cos(d.embedding, ref.vectors[i]).toFixed(6)).join(' '));
    }
  }

  // errors as the SDK's typed exceptions
  await expectError(client.chat.completions.create({ model, messages, max_tokens: 4, temperature: 5 }),
                    OpenAI.BadRequestError, 400, 'temperature', 'temperature 5');
  await expectError(client.chat.completions.create({ model: 'nope', messages }), OpenAI.NotFoundError, 404, 'model',
                    'unknown model');
  await expectError(client.chat.completions.create({ model, messages, n: 9 }), OpenAI.BadRequestError, 400, 'n',
                    'n = 9');
  await expectError(client.chat.completions.create({ model, messages, tool_choice: 'required', tools: [
    { type: 'function', function: { name: 'f', parameters: { type: 'object', properties: {
      s: { type: 'string', pattern: '^a' } } } } }] }), OpenAI.BadRequestError, 400, 'tools',
                    'unsupported schema keyword with tool_choice required');
  process.exit(failed ? 1 : 0);
})().catch(e => {
  console.log('FAIL exception: ' + (e && e.stack || e));
  process.exit(1);
});
