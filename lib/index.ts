/** mentor-kd public API. */
export { native } from './native.js';
