/**
 * What a simulated node "converges": the recipes of its run list, read from the cookbook files
 * it downloaded. Nothing is executed; a recipe file is scanned for the few statements that decide
 * how a real chef-client run would end:
 *
 *   raise "message"                       the run fails: RuntimeError, "message"
 *   raise Some::Error, "message"          the run fails: Some::Error, "message"
 *   include_recipe "cookbook[::recipe]"   that recipe is compiled too (its cookbook must be in the
 *                                         solved set, i.e. a dependency in metadata)
 *   sleep N                               the run takes N seconds longer (a slow converge)
 *
 * Any other line that starts like a resource (`package "nginx" do`, `log "hello"`) counts as one
 * resource for the run report. This is how a cookbook version "marks itself failing" for the
 * simulator: its recipe raises, exactly as a broken recipe fails a real chef-client run.
 */

/** What one recipe file says, parsed once per checksum and shared by every node. */
export interface RecipeFacts {
  raise?: { cls: string; message: string };
  includes: string[];
  sleepSeconds: number;
  resources: number;
}

const RAISE = /^\s*raise\s+(?:([A-Z][\w:]*)\s*,\s*)?(["'])((?:\\.|(?!\2).)*)\2/;
const RAISE_BARE = /^\s*raise\s+([A-Z][\w:]*)\s*$/;
const INCLUDE = /^\s*include_recipe\s*\(?\s*(["'])([\w.-]+(?:::[\w.-]+)?)\1/;
const SLEEP = /^\s*sleep\s*\(?\s*(\d+(?:\.\d+)?)/;
const RESOURCE = /^\s*[a-z_]+\s*\(?\s*["']/;

export function parseRecipe(text: string): RecipeFacts {
  const facts: RecipeFacts = { includes: [], sleepSeconds: 0, resources: 0 };
  for (const line of text.split('\n')) {
    if (/^\s*#/.test(line)) continue;
    let m: RegExpExecArray | null;
    if ((m = RAISE.exec(line))) {
      facts.raise ??= { cls: m[1] ?? 'RuntimeError', message: m[3]!.replace(/\\(.)/g, '$1') };
    } else if ((m = RAISE_BARE.exec(line))) {
      facts.raise ??= { cls: m[1]!, message: m[1]! };
    } else if ((m = INCLUDE.exec(line))) {
      facts.includes.push(m[2]!);
    } else if ((m = SLEEP.exec(line))) {
      facts.sleepSeconds += Number(m[1]);
    } else if (RESOURCE.test(line)) {
      facts.resources++;
    }
  }
  return facts;
}

/** "cb" -> ["cb", "default"], "cb::r" -> ["cb", "r"] */
export function splitRecipe(name: string): [string, string] {
  const i = name.indexOf('::');
  return i < 0 ? [name, 'default'] : [name.slice(0, i), name.slice(i + 2)];
}

/** A failed chef-client run, as chef-client reports it (exception class and message). */
export class RunFailure extends Error {
  readonly cls: string;
  /** chef-client's error description (the formatter's title and sections), for the run report */
  readonly description: { title: string; sections: Record<string, string>[] } | undefined;
  constructor(cls: string, message: string, description?: { title: string; sections: Record<string, string>[] }) {
    super(message);
    this.cls = cls;
    this.description = description;
  }
}

export interface Compiled {
  sleepSeconds: number;
  resources: number;
}

/**
 * Compiles the expanded run list against the solved cookbooks: each recipe once, includes depth
 * first, as Chef's run context loads them. `recipeFacts(cookbook, recipe)` returns the parsed
 * file, or undefined when the cookbook has no such recipe.
 */
export function compileRunList(
  runList: readonly string[],
  solved: ReadonlySet<string>,
  recipeFacts: (cookbook: string, recipe: string) => RecipeFacts | undefined,
): Compiled {
  const seen = new Set<string>();
  const out: Compiled = { sleepSeconds: 0, resources: 0 };
  const load = (name: string, includedFrom?: string) => {
    const [cb, recipe] = splitRecipe(name);
    const key = `${cb}::${recipe}`;
    if (seen.has(key)) return;
    seen.add(key);
    if (!solved.has(cb)) {
      throw new RunFailure(
        'Chef::Exceptions::CookbookNotFound',
        `Cookbook ${cb} not found. If you're loading ${cb} from another cookbook, make sure you configure the dependency in your metadata`,
        includedFrom ? { title: 'Cookbook Not Found:', sections: [{ 'Included from': includedFrom }] } : undefined,
      );
    }
    const facts = recipeFacts(cb, recipe);
    if (!facts) throw new RunFailure('Chef::Exceptions::RecipeNotFound', `could not find recipe ${recipe} for cookbook ${cb}`);
    for (const inc of facts.includes) load(inc, key);
    if (facts.raise) {
      throw new RunFailure(facts.raise.cls, facts.raise.message, {
        title: `${facts.raise.cls}: ${facts.raise.message}`,
        sections: [{ 'Cookbook Trace': `${cb}/recipes/${recipe}.rb` }],
      });
    }
    out.sleepSeconds += facts.sleepSeconds;
    out.resources += facts.resources;
  };
  for (const item of runList) load(item);
  return out;
}
