/**
 * Prompt formatting for decoder-only models: the model's own chat template where its
 * tokenizer_config.json has `chat_template` (rendered by @huggingface/jinja, HF's JS port of the
 * Jinja subset transformers uses), else the plain `Q: {question}\nA:` form. `describe()` says which
 * was used (with a hash of the template), so a run can record it.
 */
import { Template } from '@huggingface/jinja';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

/** What formatted the prompts: a chat template (its name and sha256) or the plain Q/A form. */
export type PromptFormatRecord = { kind: 'chat_template'; name: string; sha256: string; source: string } | { kind: 'plain'; format: 'Q: {question}\\nA:' };

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/** A special token in tokenizer_config.json: a string, HF's AddedToken object `{content}`, or absent. */
function tokenText(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v !== null && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return undefined;
}

/**
 * The template text and its name from tokenizer_config.json's `chat_template`: a string, or HF's
 * list of named templates `[{name, template}]` (the one named "default" is used). Undefined when
 * the field is absent or null; an Error naming the file and field when it is anything else.
 */
function pickTemplate(value: unknown, source: string): { name: string; text: string } | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return { name: 'default', text: value };
  if (Array.isArray(value)) {
    const named = value.map((t, i) => {
      const o = t as { name?: unknown; template?: unknown } | null;
      if (!o || typeof o.name !== 'string' || typeof o.template !== 'string') {
        throw new Error(`${source}: field "chat_template[${i}]" must be an object {name, template} of strings`);
      }
      return { name: o.name, text: o.template };
    });
    const chosen = named.find((t) => t.name === 'default');
    if (!chosen)
      throw new Error(`${source}: field "chat_template" lists ${named.map((t) => `"${t.name}"`).join(', ') || 'no templates'}, none named "default"`);
    return chosen;
  }
  throw new Error(`${source}: field "chat_template" must be a string or a list of {name, template}, got ${typeof value}`);
}

export class PromptFormat {
  private constructor(
    private readonly template: Template | null,
    private readonly record: PromptFormatRecord,
    private readonly specialTokens: Record<string, string>,
  ) {}

  /** The plain `Q: {question}\nA:` form (models without a chat template, from-scratch demos). */
  static plain(): PromptFormat {
    return new PromptFormat(null, { kind: 'plain', format: 'Q: {question}\\nA:' }, {});
  }

  /**
   * From a parsed tokenizer_config.json: its chat_template when it has one, else plain. A template
   * that does not parse, or does not render a sample conversation, is an Error naming `source`.
   */
  static fromTokenizerConfig(config: Record<string, unknown>, source = 'tokenizer_config.json'): PromptFormat {
    const picked = pickTemplate(config.chat_template, source);
    if (!picked) return PromptFormat.plain();
    const specials: Record<string, string> = {};
    for (const key of ['bos_token', 'eos_token', 'unk_token', 'pad_token']) {
      const t = tokenText(config[key]);
      if (t !== undefined) specials[key] = t;
    }
    let template: Template;
    try {
      template = new Template(picked.text);
    } catch (e) {
      throw new Error(`${source}: field "chat_template" does not parse (${(e as Error).message})`, { cause: e });
    }
    const sha256 = createHash('sha256').update(picked.text).digest('hex');
    const format = new PromptFormat(template, { kind: 'chat_template', name: picked.name, sha256, source }, specials);
    // A template that only fails when rendered (an undefined filter, a raise_exception) fails here, at load.
    format.formatMessages([{ role: 'user', content: 'probe' }]);
    return format;
  }

  /** From a model directory's tokenizer_config.json (plain when the file or the field is absent). */
  static async load(dir: string): Promise<PromptFormat> {
    const path = join(dir, 'tokenizer_config.json');
    if (!existsSync(path)) return PromptFormat.plain();
    let config: unknown;
    try {
      config = JSON.parse(await readFile(path, 'utf8'));
    } catch (e) {
      throw new Error(`${path}: cannot read a JSON object (${(e as Error).message})`, { cause: e });
    }
    if (config === null || typeof config !== 'object' || Array.isArray(config)) throw new Error(`${path}: expected a JSON object`);
    return PromptFormat.fromTokenizerConfig(config as Record<string, unknown>, path);
  }

  get kind(): PromptFormatRecord['kind'] {
    return this.record.kind;
  }

  /** Which format this is, for the run's record. */
  describe(): PromptFormatRecord {
    return { ...this.record };
  }

  /** The prompt for one question, ending where the model's answer starts (generation prompt added). */
  format(question: string, options: { system?: string } = {}): string {
    if (!this.template) return `Q: ${question.trim()}\nA:`;
    const messages: ChatMessage[] = options.system === undefined ? [] : [{ role: 'system', content: options.system }];
    messages.push({ role: 'user', content: question });
    return this.formatMessages(messages);
  }

  /** A whole conversation through the chat template, with add_generation_prompt as HF's apply_chat_template. */
  formatMessages(messages: readonly ChatMessage[], options: { addGenerationPrompt?: boolean } = {}): string {
    if (!this.template) throw new Error('formatMessages: this model has no chat template (plain Q/A prompts only)');
    const source = this.record.kind === 'chat_template' ? this.record.source : 'chat_template';
    try {
      return this.template.render({
        ...this.specialTokens,
        messages: messages.map((m) => ({ ...m })),
        add_generation_prompt: options.addGenerationPrompt ?? true,
      });
    } catch (e) {
      throw new Error(`${source}: field "chat_template" failed to render (${(e as Error).message})`, { cause: e });
    }
  }
}
