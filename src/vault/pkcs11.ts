import koffi, { type LibraryHandle, type TypeObject } from 'koffi';
import { assert } from '../platform/assert.ts';

/**
 * The few Cryptoki (PKCS#11 v2.40) calls the vault needs, reached through the module's function list, so any
 * PKCS#11 module works (SoftHSM2 in tests, a network or PCI HSM in production). Calls are synchronous and run on
 * the main thread: one session, no interleaved operations, and the module is initialised without locking
 * callbacks. Every buffer handed to the module is native memory that stays put for the call.
 *
 *   Pkcs11Module.open(modulePath: string): Pkcs11Module
 *   module.openUserSession(tokenLabel: string, pin: string): Pkcs11Session
 *   session.findSecretKeys(): Array<{ handle, label, id }>
 *   session.generateAesKey(label: string, id: Buffer): ObjectHandle     // token, sensitive, never extractable
 *   session.attributes(handle): KeyAttributes
 *   session.encryptAesGcm(handle, iv, aad, plaintext): Buffer           // ciphertext | 16-byte tag
 *   session.decryptAesGcm(handle, iv, aad, sealed): Buffer | undefined  // undefined when it does not authenticate
 *   session.attribute(handle, CKA.…): Buffer                             // CKR_ATTRIBUTE_SENSITIVE for a secret value
 *   session.destroy(handle); session.close(); module.close()
 */

type ObjectHandle = bigint;

const CKR_OK = 0n;
const CKR_GENERAL_ERROR = 0x5n;
const CKR_ENCRYPTED_DATA_INVALID = 0x40n;
const CKR_ENCRYPTED_DATA_LEN_RANGE = 0x41n;
const CKR_USER_ALREADY_LOGGED_IN = 0x100n;
const CKR_CRYPTOKI_ALREADY_INITIALIZED = 0x191n;
const CKF_RW_SESSION = 0x2n;
const CKF_SERIAL_SESSION = 0x4n;
const CKU_USER = 1n;
const CKO_SECRET_KEY = 4n;
const CKK_AES = 0x1fn;
const CKM_AES_KEY_GEN = 0x1080n;
const CKM_AES_GCM = 0x1087n;
export const CKA = {
  CLASS: 0x0n, TOKEN: 0x1n, PRIVATE: 0x2n, LABEL: 0x3n, KEY_TYPE: 0x100n, ID: 0x102n, SENSITIVE: 0x103n,
  ENCRYPT: 0x104n, DECRYPT: 0x105n, WRAP: 0x106n, UNWRAP: 0x107n, SIGN: 0x108n, VERIFY: 0x10an, VALUE_LEN: 0x161n,
  VALUE: 0x11n, EXTRACTABLE: 0x162n, LOCAL: 0x163n, NEVER_EXTRACTABLE: 0x164n, ALWAYS_SENSITIVE: 0x165n, MODIFIABLE: 0x170n,
} as const;

const returnNames = new Map<bigint, string>([
  [0x3n, 'CKR_SLOT_ID_INVALID'], [0x5n, 'CKR_GENERAL_ERROR'], [0x6n, 'CKR_FUNCTION_FAILED'], [0x7n, 'CKR_ARGUMENTS_BAD'],
  [0x12n, 'CKR_ATTRIBUTE_TYPE_INVALID'], [0x11n, 'CKR_ATTRIBUTE_SENSITIVE'], [0x13n, 'CKR_ATTRIBUTE_VALUE_INVALID'],
  [0x30n, 'CKR_DEVICE_ERROR'], [0x31n, 'CKR_DEVICE_MEMORY'], [0x32n, 'CKR_DEVICE_REMOVED'], [0x40n, 'CKR_ENCRYPTED_DATA_INVALID'],
  [0x41n, 'CKR_ENCRYPTED_DATA_LEN_RANGE'], [0x60n, 'CKR_KEY_HANDLE_INVALID'], [0x68n, 'CKR_KEY_FUNCTION_NOT_PERMITTED'],
  [0x70n, 'CKR_MECHANISM_INVALID'], [0x71n, 'CKR_MECHANISM_PARAM_INVALID'], [0x82n, 'CKR_OBJECT_HANDLE_INVALID'],
  [0xa0n, 'CKR_PIN_INCORRECT'], [0xa4n, 'CKR_PIN_LOCKED'], [0xb3n, 'CKR_SESSION_HANDLE_INVALID'], [0xe0n, 'CKR_TOKEN_NOT_PRESENT'],
  [0x101n, 'CKR_USER_NOT_LOGGED_IN'], [0x150n, 'CKR_BUFFER_TOO_SMALL'], [0x190n, 'CKR_CRYPTOKI_NOT_INITIALIZED'],
]);

export class Pkcs11Error extends Error {
  readonly returnValue: bigint;
  constructor(call: string, returnValue: bigint) {
    super(`PKCS#11 ${call} failed: ${returnNames.get(returnValue) ?? `CKR 0x${returnValue.toString(16)}`}`);
    this.name = 'Pkcs11Error';
    this.returnValue = returnValue;
  }
}

const ulong = 'unsigned long';
const Attribute = koffi.struct('coffer_CK_ATTRIBUTE', { type: ulong, pValue: 'void *', ulValueLen: ulong });
const Mechanism = koffi.struct('coffer_CK_MECHANISM', { mechanism: ulong, pParameter: 'void *', ulParameterLen: ulong });
const GcmParams = koffi.struct('coffer_CK_GCM_PARAMS', {
  pIv: 'void *', ulIvLen: ulong, ulIvBits: ulong, pAAD: 'void *', ulAADLen: ulong, ulTagBits: ulong,
});

/** Positions in CK_FUNCTION_LIST (after its CK_VERSION), as in pkcs11f.h. */
const functionIndex = {
  C_Initialize: 0, C_Finalize: 1, C_GetSlotList: 4, C_GetTokenInfo: 6, C_OpenSession: 12, C_CloseSession: 13, C_Login: 18,
  C_DestroyObject: 22, C_GetAttributeValue: 24, C_FindObjectsInit: 26, C_FindObjects: 27, C_FindObjectsFinal: 28,
  C_EncryptInit: 29, C_Encrypt: 30, C_DecryptInit: 33, C_Decrypt: 34, C_GenerateKey: 58,
} as const;
const functionCount = 68;

const prototypes = {
  C_Initialize: koffi.proto(`${ulong} coffer_C_Initialize(void *args)`),
  C_Finalize: koffi.proto(`${ulong} coffer_C_Finalize(void *reserved)`),
  C_GetSlotList: koffi.proto(`${ulong} coffer_C_GetSlotList(uint8_t tokenPresent, void *slots, _Inout_ ${ulong} *count)`),
  C_GetTokenInfo: koffi.proto(`${ulong} coffer_C_GetTokenInfo(${ulong} slot, void *info)`),
  C_OpenSession: koffi.proto(`${ulong} coffer_C_OpenSession(${ulong} slot, ${ulong} flags, void *application, void *notify, _Out_ ${ulong} *session)`),
  C_CloseSession: koffi.proto(`${ulong} coffer_C_CloseSession(${ulong} session)`),
  C_Login: koffi.proto(`${ulong} coffer_C_Login(${ulong} session, ${ulong} userType, void *pin, ${ulong} pinLength)`),
  C_DestroyObject: koffi.proto(`${ulong} coffer_C_DestroyObject(${ulong} session, ${ulong} object)`),
  C_GetAttributeValue: koffi.proto(`${ulong} coffer_C_GetAttributeValue(${ulong} session, ${ulong} object, void *template, ${ulong} count)`),
  C_FindObjectsInit: koffi.proto(`${ulong} coffer_C_FindObjectsInit(${ulong} session, void *template, ${ulong} count)`),
  C_FindObjects: koffi.proto(`${ulong} coffer_C_FindObjects(${ulong} session, void *objects, ${ulong} maxCount, _Out_ ${ulong} *count)`),
  C_FindObjectsFinal: koffi.proto(`${ulong} coffer_C_FindObjectsFinal(${ulong} session)`),
  C_EncryptInit: koffi.proto(`${ulong} coffer_C_EncryptInit(${ulong} session, void *mechanism, ${ulong} key)`),
  C_Encrypt: koffi.proto(`${ulong} coffer_C_Encrypt(${ulong} session, void *data, ${ulong} dataLength, void *out, _Inout_ ${ulong} *outLength)`),
  C_DecryptInit: koffi.proto(`${ulong} coffer_C_DecryptInit(${ulong} session, void *mechanism, ${ulong} key)`),
  C_Decrypt: koffi.proto(`${ulong} coffer_C_Decrypt(${ulong} session, void *data, ${ulong} dataLength, void *out, _Inout_ ${ulong} *outLength)`),
  C_GenerateKey: koffi.proto(`${ulong} coffer_C_GenerateKey(${ulong} session, void *mechanism, void *template, ${ulong} count, _Out_ ${ulong} *key)`),
};

type FunctionName = keyof typeof functionIndex;
type NativeFunction = (...args: unknown[]) => number | bigint;

/** Native memory that the module may read or write during a call; wiped and freed by `Arena.free`. */
class Arena {
  readonly #blocks: Array<{ block: unknown; bytes: number }> = [];

  bytes(data: Buffer | number): unknown {
    const length = typeof data === 'number' ? data : data.length;
    const block = koffi.alloc('uint8_t', Math.max(1, length));
    this.#blocks.push({ block, bytes: Math.max(1, length) });
    if (typeof data !== 'number' && data.length > 0) koffi.encode(block, koffi.array('uint8_t', data.length), [...data]);
    return block;
  }

  struct(type: TypeObject, values: Array<Record<string, unknown>>): unknown {
    const block = koffi.alloc(type, Math.max(1, values.length));
    this.#blocks.push({ block, bytes: type.size * Math.max(1, values.length) });
    if (values.length > 0) koffi.encode(block, koffi.array(type, values.length), values);
    return block;
  }

  read(block: unknown, length: number): Buffer {
    if (length === 0) return Buffer.alloc(0);
    return Buffer.from(koffi.decode(block, koffi.array('uint8_t', length)) as number[]);
  }

  /** PINs, data keys and plaintexts pass through this memory: it is zeroed before it goes back to the allocator. */
  free(): void {
    for (const { block, bytes } of this.#blocks.splice(0)) {
      koffi.encode(block, koffi.array('uint8_t', bytes), new Array<number>(bytes).fill(0));
      koffi.free(block);
    }
  }
}

function ulongBytes(value: bigint): Buffer {
  const bytes = Buffer.alloc(8);
  bytes.writeBigUInt64LE(value);
  return bytes;
}

function boolByte(value: boolean): Buffer {
  return Buffer.of(value ? 1 : 0);
}

interface TemplateEntry {
  type: bigint;
  value: Buffer;
}

function template(arena: Arena, entries: readonly TemplateEntry[]): unknown {
  return arena.struct(Attribute, entries.map((entry) => ({ type: entry.type, pValue: arena.bytes(entry.value), ulValueLen: entry.value.length })));
}

export interface SecretKeyObject {
  handle: ObjectHandle;
  label: string;
  id: Buffer;
}

export interface KeyAttributes {
  sensitive: boolean;
  extractable: boolean;
  neverExtractable: boolean;
  alwaysSensitive: boolean;
  token: boolean;
  /** Generated inside the token (not imported with a value someone may know). */
  local: boolean;
}

export class Pkcs11Module {
  /** One initialisation per module per process, shared by whoever opens it; finalised when the last one closes. */
  static readonly #open = new Map<string, Pkcs11Module>();
  readonly #path: string;
  readonly #library: LibraryHandle;
  readonly #functions: Record<FunctionName, NativeFunction>;
  #users = 1;

  private constructor(modulePath: string, library: LibraryHandle, functions: Record<FunctionName, NativeFunction>) {
    this.#path = modulePath;
    this.#library = library;
    this.#functions = functions;
  }

  static open(modulePath: string): Pkcs11Module {
    // CK_ULONG is C's unsigned long; the templates below encode it in 8 bytes (64-bit Linux and macOS).
    assert(koffi.sizeof('unsigned long') === 8, 'PKCS#11 here needs a platform whose unsigned long is 64 bits');
    const shared = Pkcs11Module.#open.get(modulePath);
    if (shared !== undefined) {
      shared.#users += 1;
      return shared;
    }
    let library: LibraryHandle;
    try {
      library = koffi.load(modulePath);
    } catch (error) {
      throw new Error(`the PKCS#11 module ${modulePath} cannot be loaded: ${error instanceof Error ? error.message : String(error)}`);
    }
    const getFunctionList = library.func(`${ulong} C_GetFunctionList(_Out_ void **list)`) as NativeFunction;
    const listPointer: unknown[] = [null];
    check('C_GetFunctionList', getFunctionList(listPointer));
    const FunctionList = koffi.struct({ major: 'uint8_t', minor: 'uint8_t', functions: koffi.array('void *', functionCount) });
    const list = koffi.decode(listPointer[0], FunctionList) as { major: number; functions: unknown[] };
    if (list.major < 2) throw new Error(`PKCS#11 module ${modulePath} speaks Cryptoki ${list.major}.x; 2.x or later is needed`);
    const functions = {} as Record<FunctionName, NativeFunction>;
    for (const name of Object.keys(functionIndex) as FunctionName[]) {
      const pointer = list.functions[functionIndex[name]];
      assert(pointer !== null && pointer !== undefined, `the PKCS#11 module provides ${name}`);
      functions[name] = koffi.decode(pointer, prototypes[name]) as NativeFunction;
    }
    const initialize = BigInt(functions.C_Initialize(null));
    if (initialize !== CKR_OK && initialize !== CKR_CRYPTOKI_ALREADY_INITIALIZED) throw new Pkcs11Error('C_Initialize', initialize);
    const module = new Pkcs11Module(modulePath, library, functions);
    Pkcs11Module.#open.set(modulePath, module);
    return module;
  }

  call(name: FunctionName, ...args: unknown[]): bigint {
    return BigInt(this.#functions[name](...args));
  }

  /** Opens a read-write session on the token with this label and logs the user in. */
  openUserSession(tokenLabel: string, pin: string): Pkcs11Session {
    const slot = this.#slotOf(tokenLabel);
    const session: bigint[] = [0n];
    check('C_OpenSession', this.call('C_OpenSession', slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, null, null, session));
    const handle = BigInt(session[0] ?? 0n);
    const arena = new Arena();
    try {
      const pinBytes = Buffer.from(pin, 'utf8');
      const login = this.call('C_Login', handle, CKU_USER, arena.bytes(pinBytes), pinBytes.length);
      pinBytes.fill(0);
      if (login !== CKR_OK && login !== CKR_USER_ALREADY_LOGGED_IN) {
        this.call('C_CloseSession', handle);
        throw new Pkcs11Error('C_Login', login);
      }
    } finally {
      arena.free();
    }
    return new Pkcs11Session(this, handle);
  }

  close(): void {
    if (this.#users === 0) return;
    this.#users -= 1;
    if (this.#users > 0) return;
    Pkcs11Module.#open.delete(this.#path);
    this.call('C_Finalize', null);
    this.#library.unload();
  }

  #slotOf(tokenLabel: string): bigint {
    const count: bigint[] = [0n];
    check('C_GetSlotList', this.call('C_GetSlotList', 1, null, count));
    const slotCount = Number(count[0]);
    const arena = new Arena();
    try {
      const slots = arena.bytes(8 * Math.max(1, slotCount));
      check('C_GetSlotList', this.call('C_GetSlotList', 1, slots, count));
      const slotBytes = arena.read(slots, 8 * Number(count[0]));
      const labels: string[] = [];
      for (let index = 0; index < Number(count[0]); index += 1) {
        const slot = slotBytes.readBigUInt64LE(index * 8);
        // CK_TOKEN_INFO begins with the 32-byte label, padded with spaces; the rest is not needed.
        const info = arena.bytes(1024);
        check('C_GetTokenInfo', this.call('C_GetTokenInfo', slot, info));
        const label = arena.read(info, 32).toString('utf8').trimEnd();
        if (label === tokenLabel) return slot;
        labels.push(label);
      }
      throw new Error(`no PKCS#11 token is labelled "${tokenLabel}" (found: ${labels.length === 0 ? 'none' : labels.map((label) => `"${label}"`).join(', ')})`);
    } finally {
      arena.free();
    }
  }
}

function check(call: string, returnValue: number | bigint): void {
  if (BigInt(returnValue) !== CKR_OK) throw new Pkcs11Error(call, BigInt(returnValue));
}

export class Pkcs11Session {
  readonly #module: Pkcs11Module;
  readonly #handle: bigint;

  constructor(module: Pkcs11Module, handle: bigint) {
    this.#module = module;
    this.#handle = handle;
  }

  #call(name: FunctionName, ...args: unknown[]): void {
    check(name, this.#module.call(name, this.#handle, ...args));
  }

  /** Every AES secret key object on the token, with its label and id. */
  findSecretKeys(): SecretKeyObject[] {
    const handles: bigint[] = [];
    const arena = new Arena();
    try {
      // Private token objects only: creating one needs the user's login, so a key planted without the PIN is not seen.
      const search = [
        { type: CKA.CLASS, value: ulongBytes(CKO_SECRET_KEY) }, { type: CKA.KEY_TYPE, value: ulongBytes(CKK_AES) },
        { type: CKA.TOKEN, value: boolByte(true) }, { type: CKA.PRIVATE, value: boolByte(true) },
      ];
      this.#call('C_FindObjectsInit', template(arena, search), search.length);
      try {
        const batch = arena.bytes(8 * 64);
        for (;;) {
          const found: bigint[] = [0n];
          this.#call('C_FindObjects', batch, 64, found);
          const count = Number(found[0]);
          const bytes = arena.read(batch, 8 * count);
          for (let index = 0; index < count; index += 1) handles.push(bytes.readBigUInt64LE(index * 8));
          if (count < 64) break;
        }
      } finally {
        this.#call('C_FindObjectsFinal');
      }
    } finally {
      arena.free();
    }
    return handles.map((handle) => ({ handle, label: this.attribute(handle, CKA.LABEL).toString('utf8'), id: this.attribute(handle, CKA.ID) }));
  }

  /** An attribute's value: the first call asks for its length, the second reads it. */
  attribute(handle: ObjectHandle, type: bigint): Buffer {
    const arena = new Arena();
    try {
      const probe = arena.struct(Attribute, [{ type, pValue: null, ulValueLen: 0 }]);
      this.#call('C_GetAttributeValue', handle, probe, 1);
      const length = Number((koffi.decode(probe, Attribute) as { ulValueLen: number | bigint }).ulValueLen);
      const value = arena.bytes(length);
      const read = arena.struct(Attribute, [{ type, pValue: value, ulValueLen: length }]);
      this.#call('C_GetAttributeValue', handle, read, 1);
      return arena.read(value, length);
    } finally {
      arena.free();
    }
  }

  attributes(handle: ObjectHandle): KeyAttributes {
    const flag = (type: bigint) => this.attribute(handle, type)[0] === 1;
    return {
      sensitive: flag(CKA.SENSITIVE), extractable: flag(CKA.EXTRACTABLE), neverExtractable: flag(CKA.NEVER_EXTRACTABLE),
      alwaysSensitive: flag(CKA.ALWAYS_SENSITIVE), token: flag(CKA.TOKEN), local: flag(CKA.LOCAL),
    };
  }

  /**
   * A 256-bit AES key generated inside the token: persistent, private, sensitive, unchangeable, and never
   * extractable unless `extractable` says otherwise (which no KEK does).
   */
  generateAesKey(label: string, id: Buffer, extractable = false): ObjectHandle {
    const arena = new Arena();
    try {
      const mechanism = arena.struct(Mechanism, [{ mechanism: CKM_AES_KEY_GEN, pParameter: null, ulParameterLen: 0 }]);
      const entries: TemplateEntry[] = [
        { type: CKA.CLASS, value: ulongBytes(CKO_SECRET_KEY) }, { type: CKA.KEY_TYPE, value: ulongBytes(CKK_AES) },
        { type: CKA.VALUE_LEN, value: ulongBytes(32n) }, { type: CKA.LABEL, value: Buffer.from(label, 'utf8') }, { type: CKA.ID, value: id },
        { type: CKA.TOKEN, value: boolByte(true) }, { type: CKA.PRIVATE, value: boolByte(true) }, { type: CKA.SENSITIVE, value: boolByte(true) },
        { type: CKA.EXTRACTABLE, value: boolByte(extractable) }, { type: CKA.MODIFIABLE, value: boolByte(false) },
        { type: CKA.ENCRYPT, value: boolByte(true) }, { type: CKA.DECRYPT, value: boolByte(true) },
        { type: CKA.WRAP, value: boolByte(false) }, { type: CKA.UNWRAP, value: boolByte(false) },
        { type: CKA.SIGN, value: boolByte(false) }, { type: CKA.VERIFY, value: boolByte(false) },
      ];
      const key: bigint[] = [0n];
      this.#call('C_GenerateKey', mechanism, template(arena, entries), entries.length, key);
      return BigInt(key[0] ?? 0n);
    } finally {
      arena.free();
    }
  }

  #gcm(arena: Arena, iv: Buffer, aad: Buffer): unknown {
    assert(iv.length === 12, 'an AES-GCM nonce is 12 bytes');
    const parameters = arena.struct(GcmParams, [{
      pIv: arena.bytes(iv), ulIvLen: iv.length, ulIvBits: iv.length * 8, pAAD: arena.bytes(aad), ulAADLen: aad.length, ulTagBits: 128,
    }]);
    return arena.struct(Mechanism, [{ mechanism: CKM_AES_GCM, pParameter: parameters, ulParameterLen: koffi.sizeof(GcmParams) }]);
  }

  /** AES-256-GCM inside the token: returns the ciphertext followed by the 16-byte tag. */
  encryptAesGcm(key: ObjectHandle, iv: Buffer, aad: Buffer, plaintext: Buffer): Buffer {
    const arena = new Arena();
    try {
      this.#call('C_EncryptInit', this.#gcm(arena, iv, aad), key);
      const output = arena.bytes(plaintext.length + 16);
      const length: bigint[] = [BigInt(plaintext.length + 16)];
      this.#call('C_Encrypt', arena.bytes(plaintext), plaintext.length, output, length);
      return arena.read(output, Number(length[0]));
    } finally {
      arena.free();
    }
  }

  /** The plaintext, or `undefined` when the ciphertext, tag or associated data do not authenticate under the key. */
  decryptAesGcm(key: ObjectHandle, iv: Buffer, aad: Buffer, sealed: Buffer): Buffer | undefined {
    const arena = new Arena();
    try {
      this.#call('C_DecryptInit', this.#gcm(arena, iv, aad), key);
      const output = arena.bytes(sealed.length);
      const length: bigint[] = [BigInt(sealed.length)];
      const result = this.#module.call('C_Decrypt', this.#handle, arena.bytes(sealed), sealed.length, output, length);
      // The standard answers for a failed tag check; SoftHSM2 (among others) reports it as CKR_GENERAL_ERROR.
      if (result === CKR_ENCRYPTED_DATA_INVALID || result === CKR_ENCRYPTED_DATA_LEN_RANGE || result === CKR_GENERAL_ERROR) return undefined;
      check('C_Decrypt', result);
      return arena.read(output, Number(length[0]));
    } finally {
      arena.free();
    }
  }

  destroy(handle: ObjectHandle): void {
    this.#call('C_DestroyObject', handle);
  }

  close(): void {
    this.#call('C_CloseSession');
  }
}
