// Reads the frame index that stages/stamp.py writes into the pixels: a band of
// 36 black/white cells along the top 1/20 of the picture,
//   | 1 0 | 24 index bits, MSB first | 8 CRC-8 bits | 0 1 |
// The same checks as the Python reader: clear marker contrast, every cell
// clearly black or white, and a matching CRC; otherwise null.

export const CELLS = 36;
const INDEX_BITS = 24;
const CRC_BITS = 8;
const BAND_HEIGHT = 0.05; // fraction of the picture height
const MIN_CONTRAST = 60;
const MARGIN = 0.3;
const CELL_PX = 8; // canvas pixels per cell when sampling
const ROWS = 8;

export function crc8(value, bits = INDEX_BITS) {
  let crc = 0xff;
  for (let i = bits - 1; i >= 0; i--) {
    const top = ((crc >> 7) & 1) ^ ((value >> i) & 1);
    crc = (crc << 1) & 0xff;
    if (top) crc ^= 0x07;
  }
  return crc;
}

// A reader bound to its own small canvas; read(video) -> index or null.
export class StampReader {
  constructor() {
    this.canvas = document.createElement("canvas");
    this.canvas.width = CELLS * CELL_PX;
    this.canvas.height = ROWS;
    this.ctx = this.canvas.getContext("2d", { willReadFrequently: true });
  }

  read(video) {
    const w = video.videoWidth;
    const h = video.videoHeight;
    if (!w || !h) return null;
    const band = Math.max(2, Math.round(h * BAND_HEIGHT));
    this.ctx.drawImage(video, 0, 0, w, band, 0, 0, this.canvas.width, ROWS);
    const pixels = this.ctx.getImageData(0, 0, this.canvas.width, ROWS).data;
    return decode(cellLevels(pixels, this.canvas.width));
  }
}

// Mean level (0-255, RGB) of the centre half of each cell, centre half of the rows.
function cellLevels(pixels, width) {
  const levels = new Float64Array(CELLS);
  const r0 = ROWS / 4;
  const r1 = (3 * ROWS) / 4;
  for (let c = 0; c < CELLS; c++) {
    const x0 = c * CELL_PX + CELL_PX / 4;
    const x1 = c * CELL_PX + (3 * CELL_PX) / 4;
    let sum = 0;
    let n = 0;
    for (let y = r0; y < r1; y++) {
      for (let x = x0; x < x1; x++) {
        const i = (y * width + x) * 4;
        sum += pixels[i] + pixels[i + 1] + pixels[i + 2];
        n += 3;
      }
    }
    levels[c] = sum / n;
  }
  return levels;
}

function decode(levels) {
  const whiteMin = Math.min(levels[0], levels[CELLS - 1]);
  const blackMax = Math.max(levels[1], levels[CELLS - 2]);
  if (whiteMin - blackMax < MIN_CONTRAST) return null;
  const low = (levels[1] + levels[CELLS - 2]) / 2;
  const high = (levels[0] + levels[CELLS - 1]) / 2;
  const bits = [];
  for (const level of levels) {
    const norm = (level - low) / (high - low);
    if (norm > MARGIN && norm < 1 - MARGIN) return null;
    bits.push(norm >= 0.5 ? 1 : 0);
  }
  const value = toInt(bits.slice(2, 2 + INDEX_BITS));
  const check = toInt(bits.slice(2 + INDEX_BITS, 2 + INDEX_BITS + CRC_BITS));
  return crc8(value) === check ? value : null;
}

function toInt(bits) {
  return bits.reduce((acc, bit) => acc * 2 + bit, 0);
}
