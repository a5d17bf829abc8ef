/**
 * Stock numbers, the thumbnail pipeline's record ids. They name files and object keys and are put
 * into the `IMAGE_SOURCE` template, so they keep to a safe alphabet: the record schema enforces it
 * and the image source checks it again before building a URL or a path.
 */

export const STOCK_NO = /^[A-Za-z0-9_-]{1,64}$/

/** The rule in words, for error messages. */
export const STOCK_NO_RULE = "1-64 characters from A-Z a-z 0-9 _ -"
