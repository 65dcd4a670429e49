/**
 * A value in a Durable Object's storage that only this object writes: read from storage once per
 * instance, then answered from memory, every write made to both (a bot's hot path then reads no
 * storage). `setLater` writes memory only, until the caller's `persist()` (a write-behind: many
 * changes, one storage write). `forget()` after the object's storage is wiped; null deletes the key.
 */
export class KeptValue<T> {
  private known = false;
  private value: T | undefined;
  /** Memory holds a value storage has not been given yet (setLater). */
  private unsaved = false;

  constructor(
    private readonly storage: DurableObjectStorage,
    private readonly key: string,
    /** What a missing key reads as. */
    private readonly missing: () => T,
  ) {}

  async get(): Promise<T> {
    if (!this.known) {
      this.value = (await this.storage.get<T>(this.key)) ?? this.missing();
      this.known = true;
    }
    return this.value as T;
  }

  async set(value: T): Promise<void> {
    this.setLater(value);
    await this.persist();
  }

  setLater(value: T): void {
    this.value = value;
    this.known = true;
    this.unsaved = true;
  }

  /** Writes what setLater left in memory (nothing if storage already has it). */
  async persist(): Promise<void> {
    if (!this.unsaved) return;
    this.unsaved = false;
    if (this.value === null) await this.storage.delete(this.key);
    else await this.storage.put(this.key, this.value);
  }

  forget(): void {
    this.known = false;
    this.value = undefined;
    this.unsaved = false;
  }
}
