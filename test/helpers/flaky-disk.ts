import { nodeTapeFiles, type TapeFiles } from '../../src/tape/stream-recorder.js';

/** The disk's operations with a switch that makes writes fail (ENOSPC) and a gate that holds them. */
export function flakyDisk(): { files: TapeFiles; fail: (on: boolean) => void; hold: () => () => void; writes: () => number } {
  let failing = false;
  let gate: Promise<void> | undefined;
  let writes = 0;
  const files: TapeFiles = {
    ...nodeTapeFiles,
    openAppend: async (path) => {
      if (failing) throw Object.assign(new Error(`no space left on device, open '${path}'`), { code: 'ENOSPC' });
      const handle = await nodeTapeFiles.openAppend(path);
      return {
        writev: async (buffers: NodeJS.ArrayBufferView[]) => {
          await gate;
          writes += 1;
          if (failing) throw Object.assign(new Error('no space left on device, write'), { code: 'ENOSPC' });
          return handle.writev(buffers);
        },
        datasync: () => handle.datasync(),
        close: () => handle.close(),
      } as Awaited<ReturnType<TapeFiles['openAppend']>>;
    },
  };
  return {
    files,
    fail: (on) => (failing = on),
    hold: () => {
      let open!: () => void;
      gate = new Promise((resolve) => (open = resolve));
      return () => {
        gate = undefined;
        open();
      };
    },
    writes: () => writes,
  };
}
